"""ecephys.plot against the fixture session: each plot is rendered to a PNG and inspected."""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from pathlib import Path

import matplotlib  # a test dependency: the [test] extra installs it
import numpy as np
import pandas as pd
import pytest
import xarray as xr

matplotlib.use("Agg")  # before pyplot is imported: no display needed

import matplotlib.image  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.collections import LineCollection, QuadMesh  # noqa: E402
from matplotlib.image import AxesImage  # noqa: E402

import ecephys  # noqa: E402
import ecephys.plot  # noqa: E402
from ecephys.errors import EcephysWarning, UnknownIdError  # noqa: E402
from ecephys.plot import plot_mean_waveforms, plot_running_speed, plot_spike_counts, raster_plot  # noqa: E402

SESSION_PATH = (
    Path(__file__).resolve().parents[2].parent
    / "shared/fixtures/vcn2020_tiny/session_999000001/session_999000001.nwb"
)


@pytest.fixture(scope="module")
def session():
    s = ecephys.open_session(SESSION_PATH)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", EcephysWarning)  # the invalid-intervals notice on first use
        _ = s.spike_times
    yield s
    s.close()


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def presentation_ids(session, stimulus_name):
    table = session.stimulus_presentations
    return table.index[table["stimulus_name"] == stimulus_name].to_numpy()


@pytest.fixture(scope="module")
def spikes(session):
    return session.presentationwise_spike_times(presentation_ids(session, "drifting_gratings"))


@pytest.fixture(scope="module")
def counts(session):
    bin_edges = np.arange(-0.05, 0.5001, 0.01)
    ids = presentation_ids(session, "drifting_gratings")
    summed = session.presentationwise_spike_counts(bin_edges, ids, session.units.index)
    return summed.sum("stimulus_presentation_id")  # dims (time_relative_to_stimulus_onset, unit_id)


def save_and_check(fig, path: Path) -> np.ndarray:
    """Render ``fig`` to ``path``; assert the PNG exists and is not blank; return its pixels."""
    fig.savefig(path, dpi=60)
    assert path.is_file() and path.stat().st_size > 0
    pixels = matplotlib.image.imread(path)[..., :3]
    background = pixels[0, 0]
    differing = np.any(np.abs(pixels - background) > 0.05, axis=-1).mean()
    assert pixels.std() > 0.02
    assert differing > 0.03, f"only {differing:.1%} of pixels differ from the background"
    return pixels


def only(items, kind):
    found = [item for item in items if isinstance(item, kind)]
    assert len(found) == 1, found
    return found[0]


# -- raster_plot ---------------------------------------------------------------------------------
def test_raster_plot_draws_every_spike_once(spikes, tmp_path):
    assert len(spikes) > 50
    fig = raster_plot(spikes, title="drifting gratings")
    ax = fig.axes[0]
    save_and_check(fig, tmp_path / "raster.png")

    assert ax.get_xlabel() == "time (s)"
    assert ax.get_ylabel() == "unit"
    assert ax.get_title() == "drifting gratings"
    ticks = only(ax.collections, LineCollection)
    segments = ticks.get_segments()
    assert len(segments) == len(spikes)
    x = np.array([segment[0, 0] for segment in segments])
    np.testing.assert_array_equal(x, spikes.index.to_numpy())
    rows = np.array([np.floor(segment[0, 1]) for segment in segments])
    assert len(np.unique(rows)) == spikes["unit_id"].nunique()
    # rows ascend with unit id, and are labelled with it
    unit_of_row = dict(zip(rows, spikes["unit_id"], strict=True))
    assert [unit_of_row[r] for r in sorted(unit_of_row)] == sorted(spikes["unit_id"].unique())
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        str(u) for u in sorted(spikes["unit_id"].unique())
    ]


def test_raster_plot_by_presentation_relative_to_onset(session, spikes, tmp_path):
    unit_id = spikes["unit_id"].value_counts().index[0]
    one_unit = spikes[spikes["unit_id"] == unit_id]
    fig = raster_plot(
        one_unit,
        title=f"unit {unit_id}",
        rows="stimulus_presentation_id",
        relative_time=True,
        cycle_colors=True,
    )
    ax = fig.axes[0]
    save_and_check(fig, tmp_path / "raster_trials.png")
    assert ax.get_xlabel() == "time relative to stimulus onset (s)"
    assert ax.get_ylabel() == "stimulus presentation"
    segments = only(ax.collections, LineCollection).get_segments()
    assert len(segments) == len(one_unit)
    x = np.array([segment[0, 0] for segment in segments])
    np.testing.assert_allclose(x, one_unit["time_since_stimulus_presentation_onset"].to_numpy())
    assert x.min() >= 0
    assert x.max() <= session.stimulus_presentations["duration"].max()


def test_raster_plot_draws_into_the_given_axes(spikes):
    fig, (left, right) = plt.subplots(1, 2)
    returned = raster_plot(spikes, ax=right)
    assert returned is fig
    assert len(right.collections) == 1 and not left.collections
    assert right.get_title() == "spike raster"
    assert len(fig.axes) == 2


def test_raster_plot_of_100000_spikes_renders_quickly(tmp_path):
    rng = np.random.default_rng(0)
    n = 100_000
    spike_times = pd.DataFrame(
        {
            "stimulus_presentation_id": rng.integers(0, 200, n),
            "unit_id": rng.integers(0, 300, n),
            "time_since_stimulus_presentation_onset": rng.uniform(0, 0.25, n),
        },
        index=pd.Index(np.sort(rng.uniform(0, 1000, n)), name="spike_time"),
    )
    start = time.perf_counter()
    fig = raster_plot(spike_times)
    fig.savefig(tmp_path / "big.png", dpi=60)
    elapsed = time.perf_counter() - start
    assert len(only(fig.axes[0].collections, LineCollection).get_segments()) == n
    assert not fig.axes[0].get_yticks().size  # too many rows to label
    assert elapsed < 10, f"{elapsed:.1f} s"  # about 1 s; generous for slow CI


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"rows": "channel_id"}, ValueError, "rows='channel_id' is not a column"),
        ({}, ValueError, "relative_time=True needs the column"),
    ],
)
def test_raster_plot_rejects_bad_columns(spikes, kwargs, error, match):
    frame = spikes if kwargs else spikes.drop(columns="time_since_stimulus_presentation_onset")
    with pytest.raises(error, match=match):
        raster_plot(frame, relative_time=not kwargs, **kwargs)


# -- plot_mean_waveforms -------------------------------------------------------------------------
def test_plot_mean_waveforms_draws_each_unit_on_its_peak_channel(session, tmp_path):
    units = session.units
    fig = plot_mean_waveforms(session.mean_waveforms, units.index, units["peak_channel_id"])
    ax = fig.axes[0]
    save_and_check(fig, tmp_path / "waveforms.png")

    assert ax.get_xlabel() == "time (ms)"
    assert ax.get_ylabel() == "mean waveform (µV)"
    assert len(ax.lines) == len(units)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [str(u) for u in units.index]
    for line, (unit_id, channel_id) in zip(ax.lines, units["peak_channel_id"].items(), strict=True):
        expected = session.mean_waveforms[unit_id].sel(channel_id=channel_id)
        np.testing.assert_allclose(line.get_ydata(), expected.to_numpy())
        np.testing.assert_allclose(line.get_xdata(), expected["time"].to_numpy() * 1e3)


def test_plot_mean_waveforms_takes_peak_channels_in_unit_order(session):
    units = session.units.iloc[:3]
    fig, ax = plt.subplots()
    returned = plot_mean_waveforms(
        session.mean_waveforms, list(units.index), units["peak_channel_id"].tolist(), ax=ax, legend=False
    )
    assert returned is fig and fig.axes == [ax]
    assert len(ax.lines) == 3 and ax.get_legend() is None
    expected = session.mean_waveforms[units.index[2]].sel(channel_id=units["peak_channel_id"].iloc[2])
    np.testing.assert_allclose(ax.lines[2].get_ydata(), expected.to_numpy())


@pytest.mark.parametrize(
    ("peak_channels", "error", "match"),
    [
        ([1, 2], ValueError, "peak_channels has 2 entries for 3 unit_ids"),
        ({}, UnknownIdError, "no peak channel for unit"),
        ([-1, -1, -1], UnknownIdError, "peak channel -1 is not among"),
    ],
)
def test_plot_mean_waveforms_rejects_bad_peak_channels(session, peak_channels, error, match):
    with pytest.raises(error, match=match):
        plot_mean_waveforms(session.mean_waveforms, session.units.index[:3], peak_channels)


# -- plot_spike_counts ---------------------------------------------------------------------------
def test_plot_spike_counts_shows_units_by_time(counts, tmp_path):
    assert counts.dims == ("time_relative_to_stimulus_onset", "unit_id")
    times = counts["time_relative_to_stimulus_onset"]
    fig = plot_spike_counts(counts, times, "spike count", "drifting gratings")
    ax, colorbar_ax = fig.axes
    save_and_check(fig, tmp_path / "counts.png")

    assert ax.get_xlabel() == "time relative to stimulus onset (s)"
    assert ax.get_ylabel() == "unit"
    assert ax.get_title() == "drifting gratings"
    assert colorbar_ax.get_ylabel() == "spike count"
    image = only(ax.images, AxesImage)
    np.testing.assert_array_equal(image.get_array(), counts.to_numpy().T)
    left, right, bottom, top = image.get_extent()
    np.testing.assert_allclose([left, right], [-0.05, 0.5], atol=1e-9)  # the bin edges (s)
    assert (bottom, top) == (counts.sizes["unit_id"], 0)  # first unit at the top
    assert [t.get_text() for t in ax.get_yticklabels()] == [str(u) for u in counts["unit_id"].values]
    np.testing.assert_allclose(ax.get_xticks(), times.values[::20])


def test_plot_spike_counts_reads_either_layout(counts):
    expected = counts.to_numpy().T
    for data, time_coords in [
        (counts.transpose("unit_id", ...), None),  # (unit, time) DataArray, times from its coords
        (counts.to_numpy(), counts["time_relative_to_stimulus_onset"].values),  # AllenSDK (time, unit)
        (expected, counts["time_relative_to_stimulus_onset"].values),  # (unit, time)
    ]:
        fig = plot_spike_counts(data, time_coords, "spike count", "", xtick_step=None)
        np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), expected)


def test_plot_spike_counts_uneven_bins_and_given_axes(tmp_path):
    centres = np.array([0.005, 0.015, 0.03, 0.06, 0.1])
    data = xr.DataArray(
        np.arange(15.0).reshape(3, 5),
        dims=("unit_id", "time_relative_to_stimulus_onset"),
        coords={"unit_id": [7, 8, 9], "time_relative_to_stimulus_onset": centres},
    )
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    returned = plot_spike_counts(
        data, centres, "firing rate (spikes/s)", "uneven", ax=right, xtick_step=None, cmap="magma"
    )
    assert returned is fig
    assert not left.collections and not left.images
    mesh = only(right.collections, QuadMesh)
    np.testing.assert_array_equal(np.asarray(mesh.get_array()).reshape(3, 5), data.to_numpy())
    assert fig.axes[-1].get_ylabel() == "firing rate (spikes/s)"
    save_and_check(fig, tmp_path / "uneven.png")


@pytest.mark.parametrize(
    ("data", "time_coords", "match"),
    [
        (np.zeros((2, 3, 4)), np.arange(3.0), "must be 2-D"),
        (np.zeros((2, 3)), np.arange(5.0), "one axis of data_array must be time"),
        (np.zeros((2, 3)), None, "time_coords is None"),
        (np.zeros((2, 3)), [], "time_coords is empty"),
    ],
)
def test_plot_spike_counts_rejects_bad_shapes(data, time_coords, match):
    with pytest.raises(ValueError, match=match):
        plot_spike_counts(data, time_coords, "spike count", "")


# -- plot_running_speed --------------------------------------------------------------------------
def test_plot_running_speed_draws_the_trace(session, tmp_path):
    running = session.running_speed
    timestamps = ((running["start_time"] + running["end_time"]) / 2).to_numpy()
    fig = plot_running_speed(timestamps, running["velocity"])
    ax = fig.axes[0]
    save_and_check(fig, tmp_path / "running.png")

    assert ax.get_xlabel() == "time (s)"
    assert ax.get_ylabel() == "running speed (cm/s)"
    assert ax.get_title() == f"running speed from {timestamps[0]:2.2f} to {timestamps[-1]:2.2f} s"
    (line,) = ax.lines
    np.testing.assert_array_equal(line.get_xdata(), timestamps)
    np.testing.assert_array_equal(line.get_ydata(), running["velocity"].to_numpy())


def test_plot_running_speed_slice_and_given_axes(session):
    running = session.running_speed
    timestamps = running["start_time"].to_numpy()
    fig, ax = plt.subplots()
    returned = plot_running_speed(timestamps, running["velocity"].to_numpy(), 100, 1100, 10, ax=ax, title="t")
    assert returned is fig and fig.axes == [ax]
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), timestamps[100:1100:10])
    assert ax.get_title() == "t"


def test_plot_running_speed_rejects_unequal_lengths():
    with pytest.raises(ValueError, match="3 timestamps but 2 values"):
        plot_running_speed([0.0, 1.0, 2.0], [1.0, 2.0])


# -- the package ---------------------------------------------------------------------------------
def test_all_is_sorted_and_importable():
    assert list(ecephys.plot.__all__) == sorted(ecephys.plot.__all__)
    for name in ecephys.plot.__all__:
        assert callable(getattr(ecephys.plot, name)), name


def test_importing_ecephys_does_not_import_matplotlib():
    code = "import sys, ecephys, ecephys.plot; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
