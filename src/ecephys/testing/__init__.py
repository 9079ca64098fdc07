"""Public test helpers: synthetic sessions in the AllenSDK's NWB layout.

``make_session`` writes a session file and its probe LFP files with plain h5py, so tests and
benchmarks can run without downloads and without the AllenSDK.
"""

from ecephys.testing.synthetic import SessionFiles, make_session

__all__ = ["SessionFiles", "make_session"]
