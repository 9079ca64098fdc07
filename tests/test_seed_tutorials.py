"""The AllenSDK's seed tutorials, run with ecephys against the warehouse emulator.

The code of "Accessing Neuropixels Visual Coding Data" (``ecephys_data_access.ipynb``) and
"Full example of accessing Visual Coding Neuropixels data" (``ecephys_session.ipynb``) is
written here as the notebooks write it, with their import lines changed to ecephys. Besides the
imports, only values tied to the real data change: the session id, one presentation id and the
LFP time window; and one line pandas 3 no longer runs (a list combined with ``&``, wrapped in
``np.array``). Not covered: the analysis-metrics tables (the emulated project has none) and the
raw RMA queries of the "direct download" section (AllenSDK internals; ``download_links()``
answers that question in ecephys), the eye-tracking animation (IPython) and the CSD smoothing
(scipy).

The expected columns, index names and dims are what the AllenSDK 2.16.2 returns for the same
steps on the same project (checked by running the notebook code with the AllenSDK against the
emulator); where ecephys differs on purpose (column order of stimulus tables, the spontaneous
epoch threshold) docs/differences.md says so.
"""

from __future__ import annotations

import os
import shutil

import matplotlib
import numpy as np
import pandas as pd
import pytest
import xarray as xr

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

# The notebooks' imports, pointed at ecephys:
from ecephys import EcephysProjectCache, EcephysSession  # noqa: E402
from ecephys.errors import EcephysWarning  # noqa: E402
from ecephys.plot import plot_mean_waveforms, plot_running_speed, plot_spike_counts, raster_plot  # noqa: E402
from ecephys.testing.warehouse import WarehouseServer  # noqa: E402

# The session ecephys and the AllenSDK both warn about once per session on its first spike access
# (asserted in test_spike_times_warn_about_invalid_intervals_as_the_allensdk_does).
pytestmark = pytest.mark.filterwarnings("ignore:session .* has invalid time intervals:UserWarning")

SST_SESSION = 970000001  # the one male Sst brain_observatory_1.1 session of the tutorial project

# What the AllenSDK 2.16.2 returns for the same steps on the same project.
SESSION_TABLE_COLUMNS = [
    "published_at", "specimen_id", "session_type", "age_in_days", "sex", "full_genotype", "unit_count",
    "channel_count", "probe_count", "ecephys_structure_acronyms",
]  # fmt: skip
PROBE_COLUMNS = [
    "ecephys_session_id", "lfp_sampling_rate", "name", "phase", "sampling_rate", "has_lfp_data",
    "unit_count", "channel_count", "ecephys_structure_acronyms",
]  # fmt: skip
CHANNEL_COLUMNS = [
    "ecephys_probe_id", "local_index", "probe_horizontal_position", "probe_vertical_position",
    "anterior_posterior_ccf_coordinate", "dorsal_ventral_ccf_coordinate", "left_right_ccf_coordinate",
    "ecephys_structure_id", "ecephys_structure_acronym", "ecephys_session_id", "lfp_sampling_rate", "phase",
    "sampling_rate", "has_lfp_data", "unit_count",
]  # fmt: skip
PROJECT_UNIT_COLUMNS = [
    "ecephys_channel_id", "snr", "firing_rate", "isi_violations", "presence_ratio", "amplitude_cutoff",
    "isolation_distance", "L_ratio", "d_prime", "nn_hit_rate", "nn_miss_rate", "silhouette_score",
    "max_drift", "cumulative_drift", "waveform_duration", "waveform_halfwidth", "waveform_PT_ratio",
    "waveform_repolarization_slope", "waveform_recovery_slope", "waveform_amplitude", "waveform_spread",
    "waveform_velocity_above", "waveform_velocity_below", "ecephys_probe_id", "local_index",
    "probe_horizontal_position", "probe_vertical_position", "anterior_posterior_ccf_coordinate",
    "dorsal_ventral_ccf_coordinate", "left_right_ccf_coordinate", "ecephys_structure_id",
    "ecephys_structure_acronym", "ecephys_session_id", "lfp_sampling_rate", "name", "phase",
    "sampling_rate", "has_lfp_data", "date_of_acquisition", "published_at", "specimen_id", "session_type",
    "age_in_days", "sex", "genotype",
]  # fmt: skip
SESSION_UNIT_COLUMNS = [
    "waveform_PT_ratio", "waveform_amplitude", "amplitude_cutoff", "cluster_id", "cumulative_drift",
    "d_prime", "firing_rate", "isi_violations", "isolation_distance", "L_ratio", "local_index", "max_drift",
    "nn_hit_rate", "nn_miss_rate", "peak_channel_id", "presence_ratio", "waveform_recovery_slope",
    "waveform_repolarization_slope", "silhouette_score", "snr", "waveform_spread",
    "waveform_velocity_above", "waveform_velocity_below", "waveform_duration", "filtering",
    "probe_channel_number", "probe_horizontal_position", "probe_id", "probe_vertical_position",
    "structure_acronym", "ecephys_structure_id", "ecephys_structure_acronym",
    "anterior_posterior_ccf_coordinate", "dorsal_ventral_ccf_coordinate", "left_right_ccf_coordinate",
    "probe_description", "location", "probe_sampling_rate", "probe_lfp_sampling_rate", "probe_has_lfp_data",
]  # fmt: skip
SESSION_PUBLIC_NAMES = {
    "age_in_days", "channel_structure_intervals", "channels", "conditionwise_spike_statistics",
    "ecephys_session_id", "from_nwb_path", "full_genotype", "get_current_source_density",
    "get_inter_presentation_intervals_for_stimulus", "get_invalid_times", "get_lfp",
    "get_parameter_values_for_stimulus", "get_pupil_data", "get_screen_gaze_data", "get_stimulus_epochs",
    "get_stimulus_parameter_values", "get_stimulus_table", "inter_presentation_intervals", "invalid_times",
    "mean_waveforms", "metadata", "num_channels", "num_probes", "num_stimulus_presentations", "num_units",
    "optogenetic_stimulation_epochs", "presentationwise_spike_counts", "presentationwise_spike_times",
    "probes", "rig_equipment_name", "rig_geometry_data", "running_speed", "session_start_time",
    "session_type", "sex", "specimen_name", "spike_amplitudes", "spike_times", "stimulus_conditions",
    "stimulus_names", "stimulus_presentations", "structure_acronyms", "structurewise_unit_counts", "units",
}  # fmt: skip  # the AllenSDK's, less its internals (api, LazyProperty, DETAILED_STIMULUS_PARAMETERS)
METADATA_KEYS = {
    "age_in_days", "ecephys_session_id", "full_genotype", "num_channels", "num_probes",
    "num_stimulus_presentations", "num_units", "rig_equipment_name", "session_start_time", "session_type",
    "sex", "specimen_name", "stimulus_names", "structure_acronyms",
}  # fmt: skip
STATISTICS_COLUMNS = ["spike_count", "stimulus_presentation_count", "spike_mean", "spike_std", "spike_sem"]
CONDITION_COLUMNS = {
    "opacity", "orientation", "color", "frame", "contrast", "size", "units", "y_position", "mask",
    "x_position", "spatial_frequency", "temporal_frequency", "phase", "stimulus_name", "color_triplet",
}  # fmt: skip
ELLIPSE_PREFIXES = ("corneal_reflection", "pupil", "eye")


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def warehouse(tutorial_project):
    with WarehouseServer(tutorial_project) as server:
        yield server


@pytest.fixture(scope="module")
def output_dir(tmp_path_factory):
    return str(tmp_path_factory.mktemp("seed-tutorial-cache"))


@pytest.fixture(scope="module")
def cache(warehouse, output_dir):
    """``cache = EcephysProjectCache.from_warehouse(manifest=manifest_path)``, pointed at the emulator."""
    manifest_path = os.path.join(output_dir, "manifest.json")
    host = warehouse.base_url.split("://", 1)[1]
    return EcephysProjectCache.from_warehouse(
        scheme="http", host=host, manifest=manifest_path, progress=False
    )


@pytest.fixture(scope="module")
def sessions(cache):
    return cache.get_session_table()


@pytest.fixture(scope="module")
def filtered_sessions(sessions):
    # The tutorial's query. It ends with a plain list: pandas 3 refuses `Series & list`, so the
    # list is wrapped in np.array (the one change besides the imports).
    return sessions[
        (sessions.sex == "M")
        & (sessions.full_genotype.str.find("Sst") > -1)
        & (sessions.session_type == "brain_observatory_1.1")
        & np.array(["VISl" in acronyms for acronyms in sessions.ecephys_structure_acronyms])
    ]


@pytest.fixture(scope="module")
def session(cache, filtered_sessions):
    session_id = filtered_sessions.index.values[0]  # the notebook: 756029989 # for example
    return cache.get_session_data(session_id)


@pytest.fixture(scope="module")
def units_with_very_high_snr(session):
    return session.units[session.units["snr"] > 4]


@pytest.fixture(scope="module")
def drifting_gratings_presentation_ids(session):
    return session.stimulus_presentations.loc[
        (session.stimulus_presentations["stimulus_name"] == "drifting_gratings")
    ].index.values


def assert_frame(frame, columns, index_names, *, empty=False):
    assert isinstance(frame, pd.DataFrame)
    assert list(frame.columns) == list(columns)
    assert list(frame.index.names) == list(index_names)
    assert frame.empty == empty


# ------------------------------------------------------------ "Accessing Neuropixels Visual Coding Data"


def test_session_table_and_the_tutorial_query(sessions, filtered_sessions, capsys):
    print("Total number of sessions: " + str(len(sessions)))
    assert capsys.readouterr().out == "Total number of sessions: 3\n"
    assert_frame(sessions.head(), SESSION_TABLE_COLUMNS, ["id"])
    assert_frame(filtered_sessions.head(), SESSION_TABLE_COLUMNS, ["id"])
    assert filtered_sessions.index.tolist() == [SST_SESSION]


def test_session_table_summaries(sessions, capsys):
    print("Found {} sessions".format(sessions.shape[0]))
    print("Mean: {}".format(sessions.unit_count.mean()))
    print("Max: {}".format(sessions.unit_count.max()))
    print("Min: {}".format(sessions.unit_count.min()))
    assert "Found 3 sessions" in capsys.readouterr().out
    plt.hist(sessions.unit_count, bins=20)
    _ = plt.xlabel("Unit count")
    _ = plt.ylabel("# sessions")
    plt.close("all")

    genotypes = sessions.full_genotype.value_counts()
    assert genotypes.sum() == 3 and len(genotypes) == 3
    assert sessions.session_type.value_counts().to_dict() == {
        "brain_observatory_1.1": 2,
        "functional_connectivity": 1,
    }

    all_areas = []
    for index, row in sessions.iterrows():
        for a in row.ecephys_structure_acronyms:
            if a not in all_areas:
                all_areas.append(a)
    assert {"VISp", "VISl", "CA1", "LP"} <= {a for a in all_areas if isinstance(a, str)}

    count = 0
    for index, row in sessions.iterrows():
        if "VISp" in row.ecephys_structure_acronyms:
            count += 1
    assert count == 3


def test_probes_channels_and_units(cache, sessions):
    probes = cache.get_probes()
    assert_frame(probes.head(), PROBE_COLUMNS, ["id"])
    assert len(probes) == sessions.probe_count.sum()

    channels = cache.get_channels()
    assert_frame(channels.head(), CHANNEL_COLUMNS, ["id"])
    assert len(channels) == sessions.channel_count.sum()

    units = cache.get_units()
    assert_frame(units, PROJECT_UNIT_COLUMNS, ["id"])
    assert len(units) == sessions.unit_count.sum()
    filtered = len(units)

    units = cache.get_units(
        amplitude_cutoff_maximum=np.inf, presence_ratio_minimum=-np.inf, isi_violations_maximum=np.inf
    )
    assert_frame(units.head(), PROJECT_UNIT_COLUMNS, ["id"])
    assert len(units) > filtered


def test_get_session_data_downloads_and_opens_the_session(cache, filtered_sessions, output_dir):
    session = cache.get_session_data(
        filtered_sessions.index.values[0],
        isi_violations_maximum=np.inf,
        amplitude_cutoff_maximum=np.inf,
        presence_ratio_minimum=-np.inf,
    )
    public = [attr_or_method for attr_or_method in dir(session) if attr_or_method[0] != "_"]
    assert isinstance(session, EcephysSession)
    assert set(public) >= SESSION_PUBLIC_NAMES
    assert os.path.exists(os.path.join(output_dir, f"session_{SST_SESSION}", f"session_{SST_SESSION}.nwb"))
    assert_frame(session.units.head(), SESSION_UNIT_COLUMNS, ["unit_id"])
    everything = cache.get_units(
        amplitude_cutoff_maximum=np.inf, presence_ratio_minimum=-np.inf, isi_violations_maximum=np.inf
    )
    # the session also drops units on invalid channels, as the AllenSDK's does
    assert 0 < len(session.units) <= (everything["ecephys_session_id"] == SST_SESSION).sum()

    probe_id = session.probes.index.values[0]
    lfp = session.get_lfp(probe_id)
    assert isinstance(lfp, xr.DataArray) and lfp.dims == ("time", "channel") and lfp.size


def test_downloading_the_complete_dataset(cache, sessions, output_dir, capsys):
    DOWNLOAD_COMPLETE_DATASET = True
    if DOWNLOAD_COMPLETE_DATASET:
        for session_id, row in sessions.iterrows():
            truncated_file = True
            directory = os.path.join(output_dir + "/session_" + str(session_id))

            while truncated_file:
                session = cache.get_session_data(session_id)
                try:
                    print(session.specimen_name)
                    truncated_file = False
                except OSError:
                    shutil.rmtree(directory)
                    print(" Truncated spikes file, re-downloading")

            for probe_id, probe in session.probes.iterrows():
                print(" " + probe.description)
                truncated_lfp = True

                while truncated_lfp:
                    try:
                        lfp = session.get_lfp(probe_id)
                        truncated_lfp = False
                    except OSError:
                        fname = directory + "/probe_" + str(probe_id) + "_lfp.nwb"
                        os.remove(fname)
                        print("  Truncated LFP file, re-downloading")
                    except ValueError:
                        print("  LFP file not found.")
                        truncated_lfp = False
    out = capsys.readouterr().out
    assert "Truncated" not in out and "not found" not in out
    assert out.count(" probeA") == 3
    assert isinstance(lfp, xr.DataArray)
    links = cache.download_links()  # ecephys's answer to the "direct download" section
    assert links["exists"].all()
    assert f"{len(sessions)} session files and {len(links) - len(sessions)} LFP files cached" in repr(cache)


def test_a_cache_over_the_filled_folder_and_from_nwb_path(cache, output_dir):
    manifest_path = os.path.join(output_dir, "manifest.json")
    cache.fetch_session_file(SST_SESSION)
    offline = EcephysProjectCache(manifest=manifest_path)
    assert len(offline.get_session_table()) == 3

    nwb_path = os.path.join(output_dir, f"session_{SST_SESSION}", f"session_{SST_SESSION}.nwb")
    session = EcephysSession.from_nwb_path(
        nwb_path,
        api_kwargs={
            "amplitude_cutoff_maximum": np.inf,
            "presence_ratio_minimum": -np.inf,
            "isi_violations_maximum": np.inf,
        },
    )
    assert session.num_units == len(
        cache.get_session_data(
            SST_SESSION,
            amplitude_cutoff_maximum=np.inf,
            presence_ratio_minimum=-np.inf,
            isi_violations_maximum=np.inf,
        ).units
    )


# ------------------------------------------------------------------ "Full example" (ecephys_session)


def test_surveying_metadata(cache):
    assert cache.get_all_session_types() == ["brain_observatory_1.1", "functional_connectivity"]
    assert len(cache.get_all_full_genotypes()) == 3
    assert "VISl" in cache.get_structure_acronyms()


def test_session_metadata_and_units(session, units_with_very_high_snr, capsys):
    print(f"session {session.ecephys_session_id} was acquired in {session.session_start_time}")
    assert capsys.readouterr().out.startswith(f"session {SST_SESSION} was acquired in 2019-01-08 13:39:03")
    assert set(session.metadata) == METADATA_KEYS
    counts = session.structurewise_unit_counts
    assert counts.name == "ecephys_structure_acronym" and counts["VISl"] > 0
    assert_frame(session.units.head(), SESSION_UNIT_COLUMNS, ["unit_id"])
    print(f"{session.units.shape[0]} units total")
    print(f"{units_with_very_high_snr.shape[0]} units have snr > 4")
    assert 0 < len(units_with_very_high_snr) < len(session.units)


def test_stimulus_presentations_epochs_and_conditions(session):
    presentations = session.stimulus_presentations.head()
    assert presentations.index.name == "stimulus_presentation_id"
    assert list(presentations.columns[:3]) == ["stimulus_block", "start_time", "stop_time"]
    assert list(presentations.columns[-2:]) == ["duration", "stimulus_condition_id"]
    assert {"drifting_gratings", "flashes", "natural_scenes"} <= set(session.stimulus_names)
    epochs = session.get_stimulus_epochs()
    assert list(epochs.columns) == ["start_time", "stop_time", "duration", "stimulus_name", "stimulus_block"]
    assert "drifting_gratings" in set(epochs.stimulus_name)
    table = session.get_stimulus_table(["drifting_gratings"]).head()
    assert table.index.name == "stimulus_presentation_id" and set(table.stimulus_name) == {
        "drifting_gratings"
    }
    parameters = {key: values for key, values in session.get_stimulus_parameter_values().items()}
    assert {"orientation", "temporal_frequency", "contrast"} <= set(parameters)
    conditions = session.stimulus_conditions.head()
    assert conditions.index.name == "stimulus_condition_id" and set(conditions.columns) == CONDITION_COLUMNS


def test_spike_times_warn_about_invalid_intervals_as_the_allensdk_does(cache):
    session = cache.get_session_data(SST_SESSION)
    unit_id = session.units.index.values[0]
    with pytest.warns(EcephysWarning, match="invalid time intervals"):
        times = session.spike_times[unit_id]
    assert times.dtype == np.float64 and len(times)


def test_spike_times_rasters_and_conditionwise_statistics(
    session, units_with_very_high_snr, drifting_gratings_presentation_ids
):
    high_snr_unit_ids = units_with_very_high_snr.index.values
    unit_id = high_snr_unit_ids[0]
    print(f"{len(session.spike_times[unit_id])} spikes were detected for unit {unit_id} at times:")
    assert len(session.spike_times[unit_id]) > 0

    times = session.presentationwise_spike_times(
        stimulus_presentation_ids=drifting_gratings_presentation_ids, unit_ids=high_snr_unit_ids
    )
    assert_frame(
        times.head(),
        ["stimulus_presentation_id", "unit_id", "time_since_stimulus_presentation_onset"],
        ["spike_time"],
    )

    first_drifting_grating_presentation_id = times["stimulus_presentation_id"].values[0]
    plot_times = times[times["stimulus_presentation_id"] == first_drifting_grating_presentation_id]
    fig = raster_plot(
        plot_times, title=f"spike raster for stimulus presentation {first_drifting_grating_presentation_id}"
    )
    assert isinstance(fig, matplotlib.figure.Figure)
    plt.close("all")
    row = session.stimulus_presentations.loc[first_drifting_grating_presentation_id]
    assert row["stimulus_name"] == "drifting_gratings"

    stats = session.conditionwise_spike_statistics(
        stimulus_presentation_ids=drifting_gratings_presentation_ids, unit_ids=high_snr_unit_ids
    )
    assert_frame(stats, STATISTICS_COLUMNS, ["unit_id", "stimulus_condition_id"])
    stats = pd.merge(stats, session.stimulus_conditions, left_on="stimulus_condition_id", right_index=True)
    assert set(stats.columns) == {*STATISTICS_COLUMNS, *CONDITION_COLUMNS}

    with_repeats = stats[stats["stimulus_presentation_count"] >= 5]  # the 10-minute session has few repeats
    highest_mean_rate = lambda df: df.loc[df["spike_mean"].idxmax()]  # noqa: E731 - as the notebook writes it
    max_rate_conditions = with_repeats.groupby("unit_id").apply(highest_mean_rate)
    assert isinstance(max_rate_conditions, pd.DataFrame)
    max_rate_conditions = stats.groupby("unit_id").apply(highest_mean_rate)  # every condition
    assert max_rate_conditions.index.name == "unit_id"
    assert len(max_rate_conditions) == stats.index.get_level_values("unit_id").nunique()


def test_spike_histograms(session):
    time_bin_edges = np.linspace(-0.01, 0.4, 200)
    flash_250_ms_stimulus_presentation_ids = session.stimulus_presentations[
        session.stimulus_presentations["stimulus_name"] == "flashes"
    ].index.values
    decent_snr_unit_ids = session.units[session.units["snr"] >= 1.5].index.values
    spike_counts_da = session.presentationwise_spike_counts(
        bin_edges=time_bin_edges,
        stimulus_presentation_ids=flash_250_ms_stimulus_presentation_ids,
        unit_ids=decent_snr_unit_ids,
    )
    assert spike_counts_da.name == "spike_counts"
    assert spike_counts_da.dims == ("stimulus_presentation_id", "time_relative_to_stimulus_onset", "unit_id")
    assert spike_counts_da.shape == (
        len(flash_250_ms_stimulus_presentation_ids),
        199,
        len(decent_snr_unit_ids),
    )
    assert spike_counts_da.dtype == np.uint16 and int(spike_counts_da.sum()) > 0

    presentation_id = flash_250_ms_stimulus_presentation_ids[0]  # the notebook: 3796 # chosen arbitrarily
    plot_spike_counts(
        spike_counts_da.loc[{"stimulus_presentation_id": presentation_id}],
        spike_counts_da["time_relative_to_stimulus_onset"],
        "spike count",
        f"unitwise spike counts on presentation {presentation_id}",
    )
    mean_spike_counts = spike_counts_da.mean(dim="stimulus_presentation_id")
    assert mean_spike_counts.dims == ("time_relative_to_stimulus_onset", "unit_id")
    plot_spike_counts(
        mean_spike_counts,
        mean_spike_counts["time_relative_to_stimulus_onset"],
        "mean spike count",
        "mean spike counts on flash_250_ms presentations",
    )
    plt.close("all")


def test_waveforms(session, units_with_very_high_snr):
    high_snr_unit_ids = units_with_very_high_snr.index.values
    units_of_interest = high_snr_unit_ids[:35]

    waveforms = {uid: session.mean_waveforms[uid] for uid in units_of_interest}
    peak_channels = {uid: session.units.loc[uid, "peak_channel_id"] for uid in units_of_interest}
    plot_mean_waveforms(waveforms, units_of_interest, peak_channels)
    plt.close("all")

    uid = units_of_interest[12]
    unit_waveforms = waveforms[uid]
    assert unit_waveforms.dims == ("channel_id", "time")
    peak_channel = peak_channels[uid]
    peak_channel_idx = np.where(unit_waveforms["channel_id"] == peak_channel)[0][0]

    ch_min = max(peak_channel_idx - 10, 0)
    ch_max = min(peak_channel_idx + 10, len(unit_waveforms["channel_id"]) - 1)
    surrounding_channels = unit_waveforms["channel_id"][np.arange(ch_min, ch_max, 2)]

    fig, ax = plt.subplots()
    ax.imshow(unit_waveforms.loc[{"channel_id": surrounding_channels}])
    ax.yaxis.set_major_locator(plt.NullLocator())
    ax.set_ylabel("channel", fontsize=16)
    ax.set_xticks(np.arange(0, len(unit_waveforms["time"]), 20))
    ax.set_xticklabels([f"{float(ii):1.4f}" for ii in unit_waveforms["time"][::20]], rotation=45)
    ax.set_xlabel("time (s)", fontsize=16)
    plt.close("all")


def test_running_speed_optotagging_and_eye_tracking(session):
    running_speed_midpoints = (
        session.running_speed["start_time"]
        + (session.running_speed["end_time"] - session.running_speed["start_time"]) / 2
    )
    plot_running_speed(
        running_speed_midpoints, session.running_speed["velocity"], start_index=5000, stop_index=5100
    )
    plt.close("all")
    assert list(session.running_speed.columns) == ["start_time", "end_time", "velocity"]

    epochs = session.optogenetic_stimulation_epochs
    assert_frame(
        epochs, ["start_time", "condition", "level", "stop_time", "stimulus_name", "duration"], ["id"]
    )

    pupil_data = session.get_pupil_data()
    assert pupil_data.index.name == "Time (s)" and len(pupil_data)
    for prefix in ELLIPSE_PREFIXES:  # what the notebook's ellipse animation reads
        for part in ("center_x", "center_y", "width", "height", "phi"):
            assert f"{prefix}_{part}" in pupil_data.columns
    gaze_data = session.get_screen_gaze_data()
    ax = gaze_data[["raw_pupil_area"]].plot()
    _ = ax.set_ylabel("Area cm^2")
    plt.close("all")


def test_local_field_potential_and_current_source_density(session):
    assert list(session.probes.head().columns) == [
        "description", "location", "sampling_rate", "lfp_sampling_rate", "has_lfp_data",
    ]  # fmt: skip
    probe_id = session.probes.index.values[0]
    lfp = session.get_lfp(probe_id)
    assert lfp.name == "LFP" and lfp.dims == ("time", "channel")

    structure_acronyms, intervals = session.channel_structure_intervals(lfp["channel"])
    interval_midpoints = [aa + (bb - aa) / 2 for aa, bb in zip(intervals[:-1], intervals[1:])]  # noqa: B905
    assert len(structure_acronyms) == len(intervals) - 1 == len(interval_midpoints)
    assert intervals[0] == 0 and intervals[-1] == lfp.sizes["channel"]

    start = float(lfp["time"][0])  # the notebook: 4.0 and 5.0 s, inside the real file's LFP
    window = np.where(np.logical_and(lfp["time"] < start + 1.0, lfp["time"] >= start))[0]
    fig, ax = plt.subplots()
    ax.pcolormesh(lfp[{"time": window}].T)
    ax.set_yticks(intervals)
    ax.set_yticks(interval_midpoints, minor=True)
    ax.set_yticklabels(structure_acronyms, minor=True)
    plt.tick_params("y", which="major", labelleft=False, length=40)
    num_time_labels = 8
    time_label_indices = np.around(np.linspace(1, len(window), num_time_labels)).astype(int) - 1
    time_labels = [f"{val:1.3}" for val in lfp["time"].values[window][time_label_indices]]
    ax.set_xticks(time_label_indices + 0.5)
    ax.set_xticklabels(time_labels)
    ax.set_xlabel("time (s)", fontsize=20)
    plt.close("all")

    csd = session.get_current_source_density(probe_id)
    assert csd.name == "CSD" and csd.dims == ("virtual_channel_index", "time")
    assert {"vertical_position", "horizontal_position"} <= set(csd.coords)
    filtered_csd = csd.data  # the notebook smooths with scipy's gaussian_filter(csd.data, sigma=4)
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.pcolor(csd["time"], csd["vertical_position"], filtered_csd)
    ax.set_xlabel("time relative to stimulus onset (s)", fontsize=20)
    ax.set_ylabel("vertical position (um)", fontsize=20)
    plt.close("all")
