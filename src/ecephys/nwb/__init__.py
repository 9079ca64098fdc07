"""Reading HDF5/NWB files with h5py; knows nothing of the network."""
