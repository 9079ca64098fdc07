"""The AllenSDK's NWB layout for Visual Coding – Neuropixels sessions, in two variants.

``LAYOUTS`` holds what differs between the v2.0.0 writer (the released 2020 files,
``"vcn2020"``) and the 2.16.2 writer (``"sdk2162"``); the functions write the Allen-specific
objects (subject, probes, electrodes, units, presentation tables, LFP series, CSD) with the
generic building blocks of ``_nwb_writer``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import h5py
import numpy as np

from ecephys.testing._nwb_writer import (
    Column,
    dynamic_table,
    element_ids,
    mark,
    processing_module,
    set_data_attrs,
    set_text_list_attr,
    set_timestamp_attrs,
    text_array,
    time_intervals,
    time_series,
    time_series_group,
    vector_data,
    write_text,
)

# LFP data above this many bytes per file goes the fast way: chunks holding every channel,
# deflated on worker threads and stored with direct chunk writes (``StreamWriter``).
DIRECT_WRITE_MIN_BYTES = 64 * 2**20
LFP_CHUNK_BYTES = 2**19
TIMESTAMP_CHUNK_SAMPLES = 2**16

ELECTRODE_DESCRIPTIONS = {
    "location": "the location of channel within the subject e.g. brain region",
    "group": "a reference to the ElectrodeGroup this electrode is a part of",
    "group_name": "the name of the ElectrodeGroup this electrode is a part of",
    "probe_vertical_position": "Length-wise position of electrode/channel on device (microns)",
    "probe_horizontal_position": "Width-wise position of electrode/channel on device (microns)",
    "probe_id": "The unique id of this electrode's/channel's device",
    "channel_number": "The local index of electrode/channel on device",
    "valid_data": "Whether data from this electrode/channel is usable",
    "x": "the x coordinate of the position (+x is posterior)",
    "y": "the y coordinate of the position (+y is inferior)",
    "z": "the z coordinate of the position (+z is right)",
    "imp": "the impedance of the electrode, in ohms",
    "filtering": "description of hardware filtering, including the filter name and frequency cutoffs",
}
PRESENTATION_DESCRIPTIONS = {
    "start_time": "Start time of epoch, in seconds",
    "stop_time": "Stop time of epoch, in seconds",
    "stimulus_name": "Name of stimulus",
    "stimulus_block": "Index of contiguous presentations of one stimulus type",
    "stimulus_index": "Index of stimulus type",
    "color": "No description",
    "contrast": "Contrast of stimulus",
    "frame": "Frame of movie stimulus",
    "orientation": "Orientation of stimulus",
    "phase": "Phase of grating stimulus",
    "size": "Size of stimulus (see \u2018units\u2019 field for units)",
    "spatial_frequency": "Spatial frequency of stimulus",
    "temporal_frequency": "Temporal frequency of stimulus",
    "x_position": "Horizontal position of stimulus on screen",
    "y_position": "Vertical position of stimulus on screen",
    "mask": "Shape of mask applied to stimulus",
    "opacity": "Opacity of stimulus",
    "units": "Units of stimulus size",
    "Speed": "Speed of moving dot field",
    "Dir": "Direction of stimulus motion",
    "coherence": "Coherence of moving dot field",
    "dotLife": "Longevity of individual dots",
    "dotSize": "Size of individual dots",
    "fieldPos": "Position of moving dot field",
    "fieldShape": "Shape of moving dot field",
    "fieldSize": "Size of moving dot field",
    "nDots": "Number of dots in moving dot field",
    "noiseDots": "No description",
}


@dataclass(frozen=True)
class Layout:
    """What differs between the v2.0.0 writer (released 2020 files) and the 2.16.2 writer."""

    name: str
    channel_number_column: str  # electrodes column of the within-probe channel number
    stimulus_index_dtype: type  # of presentation tables' stimulus_index
    spontaneous_stimulus_index: int | None  # value for spontaneous rows; None: no column
    institution: str  # session file; LFP files always say "Allen Institute for Brain Science"
    out_of_brain_location: str  # electrodes' location outside the brain
    waveform_halfwidth: bool  # whether /units has the column
    sorted_unit_columns: bool  # /units colnames sorted (2.16.2) or in LIMS order (v2.0.0)
    waveform_mean_description: str
    presentation_note: str  # appended to the presentation tables' descriptions
    compress_lfp: bool  # gzip-9 chunked LFP data and timestamps
    lfp_file_rate_divisor: float  # v2.0.0 halves lfp_sampling_rate again in the LFP file
    lfp_file_subject: bool  # LFP file has /general/subject and /general/stimulus
    lfp_session_description: str
    csd_description: str


LAYOUTS = {
    "vcn2020": Layout(
        name="vcn2020",
        channel_number_column="local_index",
        stimulus_index_dtype=np.float64,
        spontaneous_stimulus_index=None,
        institution="Allen Institute for Brain Science",
        out_of_brain_location="",
        waveform_halfwidth=True,
        sorted_unit_columns=False,
        waveform_mean_description="mean waveforms on peak channels (and over samples)",
        presentation_note="",
        compress_lfp=True,
        lfp_file_rate_divisor=2.0,
        lfp_file_subject=True,
        lfp_session_description="LFP data and associated channel info for a single Ecephys probe",
        csd_description="Precalculated current source density from interpolated channel locations.",
    ),
    "sdk2162": Layout(
        name="sdk2162",
        channel_number_column="probe_channel_number",
        stimulus_index_dtype=np.int64,
        spontaneous_stimulus_index=-99,
        institution="Allen Institute",
        out_of_brain_location="None",
        waveform_halfwidth=False,
        sorted_unit_columns=True,
        waveform_mean_description="mean waveforms on peak channels (over samples)",
        presentation_note=". \nNote: image_name references control_description in stimulus/templates",
        compress_lfp=False,
        lfp_file_rate_divisor=1.0,
        lfp_file_subject=False,
        lfp_session_description="LFP data and associated info for one probe",
        csd_description="Precalculated current source density",
    ),
}


def write_general(nwb: h5py.File, *, session_id: int, institution: str, stimulus: str | None) -> None:
    """``/general`` scalars: session id, institution and (session file) the session type."""
    general = nwb["general"]
    write_text(general, "session_id", str(session_id))
    write_text(general, "institution", institution)
    if stimulus is not None:
        write_text(general, "stimulus", stimulus)


def write_subject(nwb: h5py.File, subject: dict[str, str | float]) -> None:
    """``/general/subject`` as an ``ndx-aibs-ecephys`` EcephysSpecimen."""
    group = nwb["general"].create_group("subject")
    mark(group, "EcephysSpecimen", "ndx-aibs-ecephys")
    group.attrs["specimen_name"] = subject["specimen_name"]
    group.attrs["age_in_days"] = np.float64(subject["age_in_days"])
    write_text(group, "age", str(subject["age"])).attrs["reference"] = "birth"
    for key in ("genotype", "sex", "species", "strain", "subject_id"):
        write_text(group, key, str(subject[key]))


@dataclass(frozen=True)
class ProbeMeta:
    """What the file says about one probe: names, ids and clock-corrected rates (Hz)."""

    name: str
    probe_id: int
    sampling_rate: float
    lfp_sampling_rate: float
    has_lfp_data: bool


def write_probes(nwb: h5py.File, probes: Sequence[ProbeMeta], *, lfp_rate_divisor: float = 1.0) -> None:
    """EcephysProbe devices and EcephysElectrodeGroups (with their ``device`` soft links)."""
    devices = nwb["general"].require_group("devices")
    ecephys = nwb["general"].require_group("extracellular_ephys")
    for probe in probes:
        device = devices.create_group(probe.name)
        mark(device, "EcephysProbe", "ndx-aibs-ecephys")
        device.attrs["description"] = "Neuropixels 1.0 Probe"
        device.attrs["manufacturer"] = "imec"
        device.attrs["probe_id"] = np.int64(probe.probe_id)
        device.attrs["sampling_rate"] = np.float64(probe.sampling_rate)
        group = ecephys.create_group(probe.name)
        mark(group, "EcephysElectrodeGroup", "ndx-aibs-ecephys")
        group.attrs["description"] = "Ecephys Electrode Group"
        group.attrs["location"] = "See electrode locations"
        group.attrs["probe_id"] = np.int64(probe.probe_id)
        group.attrs["lfp_sampling_rate"] = np.float64(probe.lfp_sampling_rate / lfp_rate_divisor)
        group.attrs["has_lfp_data"] = np.bool_(probe.has_lfp_data)
        group["device"] = h5py.SoftLink(device.name)


def write_electrodes(nwb: h5py.File, table: dict[str, np.ndarray], layout: Layout) -> h5py.Group:
    """The electrodes table; ``table`` holds id, group_name, location, positions, probe_id, ...

    ``channel_number`` is stored under the layout's column name (``local_index`` or
    ``probe_channel_number``) and ``group`` as object references to the electrode groups.
    """
    ecephys = nwb["general/extracellular_ephys"]
    refs = np.array([ecephys[name].ref for name in table["group_name"]], dtype=h5py.ref_dtype)
    order = (
        ("location", text_array(table["location"])),
        ("group", refs),
        ("group_name", text_array(table["group_name"])),
        ("probe_vertical_position", table["probe_vertical_position"].astype(np.int64)),
        ("probe_horizontal_position", table["probe_horizontal_position"].astype(np.int64)),
        ("probe_id", table["probe_id"].astype(np.int64)),
        ("channel_number", table["channel_number"].astype(np.int64)),
        ("valid_data", table["valid_data"].astype(bool)),
        ("x", table["x"].astype(np.float64)),
        ("y", table["y"].astype(np.float64)),
        ("z", table["z"].astype(np.float64)),
        ("imp", np.full(len(table["id"]), np.nan)),
        (
            "filtering",
            text_array(["AP band: 500 Hz high-pass; LFP band: 1000 Hz low-pass"] * len(table["id"])),
        ),
    )
    columns = [
        Column(
            layout.channel_number_column if key == "channel_number" else key,
            data,
            ELECTRODE_DESCRIPTIONS[key],
        )
        for key, data in order
    ]
    return dynamic_table(
        ecephys,
        "electrodes",
        ids=table["id"],
        columns=columns,
        description="metadata about extracellular electrodes",
    )


# --------------------------------------------------------------------------- session file parts

LIMS_UNIT_COLUMNS = (
    "peak_channel_id",
    "local_index",
    "cluster_id",
    "quality",
    "firing_rate",
    "snr",
    "isi_violations",
    "presence_ratio",
    "amplitude_cutoff",
    "isolation_distance",
    "l_ratio",
    "d_prime",
    "nn_hit_rate",
    "nn_miss_rate",
    "max_drift",
    "cumulative_drift",
    "silhouette_score",
    "waveform_duration",
    "waveform_halfwidth",
    "PT_ratio",
    "repolarization_slope",
    "recovery_slope",
    "amplitude",
    "spread",
    "velocity_above",
    "velocity_below",
)


def unit_column_names(layout: Layout) -> list[str]:
    """Scalar unit columns in the order the layout's writer stores them in ``colnames``."""
    names = [n for n in LIMS_UNIT_COLUMNS if layout.waveform_halfwidth or n != "waveform_halfwidth"]
    return sorted(names) if layout.sorted_unit_columns else names


def start_units_table(
    nwb: h5py.File,
    *,
    ids: np.ndarray,
    metrics: dict[str, np.ndarray],
    n_spikes: int,
    waveform_rows: int,
    waveform_samples: int,
    layout: Layout,
) -> dict[str, h5py.Dataset]:
    """Write /units' scalar columns and allocate ``spike_times``, ``spike_amplitudes`` and
    ``waveform_mean`` for the caller to fill; returns those three datasets."""
    units = nwb.create_group("units")
    mark(units, "Units")
    units.attrs["description"] = ""
    scalar_names = unit_column_names(layout)
    set_text_list_attr(units, "colnames", [*scalar_names, "spike_times", "spike_amplitudes", "waveform_mean"])
    element_ids(units, ids)
    for name in scalar_names:
        values = metrics[name]
        vector_data(units, name, text_array(values) if values.dtype == object else values)
    big = {
        "spike_times": ((n_spikes,), np.float64, "times (s) of detected spiking events"),
        "spike_amplitudes": ((n_spikes,), np.float64, "amplitude (s) of detected spiking events"),
        "waveform_mean": ((waveform_rows, waveform_samples), np.float32, layout.waveform_mean_description),
    }
    out = {}
    for name, (shape, dtype, description) in big.items():
        dset = units.create_dataset(name, shape=shape, dtype=dtype)
        mark(dset, "VectorData", "hdmf-common")
        dset.attrs["description"] = description
        out[name] = dset
    out["waveform_mean"].attrs["unit"] = "volts"
    return out


def presentation_table(
    intervals: h5py.Group,
    stimulus_name: str,
    columns: Sequence[Column],
    timestamps: h5py.Group,
    rows: np.ndarray,
    layout: Layout,
) -> h5py.Group:
    """One ``<stimulus_name>_presentations`` TimeIntervals table."""
    description = (
        f"Presentation times and stimuli details for '{stimulus_name}' stimuli{layout.presentation_note}"
    )
    described = [Column(c.name, c.data, PRESENTATION_DESCRIPTIONS[c.name]) for c in columns]
    return time_intervals(
        intervals,
        f"{stimulus_name}_presentations",
        description=description,
        columns=described,
        tags=[("stimulus_time_interval",)] * len(rows),
        timeseries=timestamps,
        timeseries_rows=rows,
    )


def invalid_times_table(
    intervals: h5py.Group, start: np.ndarray, stop: np.ndarray, tags: Sequence[Sequence[str]]
) -> h5py.Group:
    """``/intervals/invalid_times`` with [type, id, label] tags per row."""
    columns = [
        Column("start_time", start, PRESENTATION_DESCRIPTIONS["start_time"]),
        Column("stop_time", stop, PRESENTATION_DESCRIPTIONS["stop_time"]),
    ]
    return time_intervals(
        intervals, "invalid_times", description="experimental intervals", columns=columns, tags=tags
    )


def eye_tracking_rig(module: h5py.Group, geometry: dict[str, tuple[np.ndarray, str]], equipment: str) -> None:
    """An EcephysEyeTrackingRigMetadata with its (3,) position/rotation datasets and units."""
    group = module.create_group("eye_tracking_rig_metadata")
    mark(group, "EcephysEyeTrackingRigMetadata", "ndx-aibs-ecephys")
    group.attrs["equipment"] = equipment
    for name, (values, unit) in geometry.items():
        group.create_dataset(name, data=np.asarray(values, dtype=np.float64)).attrs["unit"] = unit


def create_lfp_series(
    lfp: h5py.Group, name: str, *, n_samples: int, n_channels: int, compress: bool
) -> tuple[h5py.Group, h5py.Dataset, h5py.Dataset, bool]:
    """Allocate the ElectricalSeries ``data`` (T, C) float32 volts and ``timestamps`` (T,) float64.

    Compressed small files use h5py's automatic chunk shape, as hdmf did for the released
    files; large ones use chunks holding every channel (``LFP_CHUNK_BYTES``) and direct
    writes. Returns the series group, both datasets and whether direct writes apply.
    """
    series = time_series_group(lfp, name, "ElectricalSeries")
    direct = compress and n_samples * n_channels * 4 > DIRECT_WRITE_MIN_BYTES
    if not compress:
        data = series.create_dataset("data", shape=(n_samples, n_channels), dtype=np.float32)
        stamps = series.create_dataset("timestamps", shape=(n_samples,), dtype=np.float64)
    elif not direct:
        gzip9 = {"chunks": True, "compression": "gzip", "compression_opts": 9}
        data = series.create_dataset("data", shape=(n_samples, n_channels), dtype=np.float32, **gzip9)
        stamps = series.create_dataset("timestamps", shape=(n_samples,), dtype=np.float64, **gzip9)
    else:
        rows = max(1, min(n_samples, LFP_CHUNK_BYTES // (4 * n_channels)))
        data = series.create_dataset(
            "data",
            shape=(n_samples, n_channels),
            dtype=np.float32,
            chunks=(rows, n_channels),
            compression="gzip",
            compression_opts=9,
        )
        stamp_rows = min(n_samples, rows * max(1, TIMESTAMP_CHUNK_SAMPLES // rows))  # whole data chunks
        stamps = series.create_dataset(
            "timestamps",
            shape=(n_samples,),
            dtype=np.float64,
            chunks=(stamp_rows,),
            compression="gzip",
            compression_opts=9,
        )
    set_data_attrs(data, "volts")
    set_timestamp_attrs(stamps)
    return series, data, stamps, direct


def csd_module(
    nwb: h5py.File,
    *,
    description: str,
    timestamps: np.ndarray,
    data: np.ndarray,
    x_positions: np.ndarray,
    y_positions: np.ndarray,
) -> None:
    """``/processing/current_source_density/ecephys_csd`` (EcephysCSD): a (time, channel) series
    in V/cm^2 plus the virtual electrodes' x and y positions in µm."""
    module = processing_module(nwb, "current_source_density", description)
    csd = module.create_group("ecephys_csd")
    mark(csd, "EcephysCSD", "ndx-aibs-ecephys")
    time_series(csd, "current_source_density", data, "V/cm^2", timestamps=timestamps)
    for name, values in (
        ("virtual_electrode_x_positions", x_positions),
        ("virtual_electrode_y_positions", y_positions),
    ):
        csd.create_dataset(name, data=np.asarray(values, dtype=np.float64)).attrs["unit"] = "um"
