"""ProbeLFPFile's chunk-frugal timestamp search equals np.searchsorted, whatever the sampling."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecephys.nwb.lfp import ProbeLFPFile


def write_lfp(path, timestamps: np.ndarray, chunk: int) -> None:
    """A minimal probe LFP file: the series and its electrodes ids."""
    with h5py.File(path, "w") as f:
        series = f.create_group("acquisition/probe_1_lfp/probe_1_lfp_data")
        series.create_dataset("timestamps", data=timestamps, chunks=(chunk,), compression="gzip")
        series.create_dataset("data", data=np.zeros((len(timestamps), 2), np.float32), chunks=(chunk, 2))
        f.create_dataset("general/extracellular_ephys/electrodes/id", data=np.array([10, 20]))


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 3000),
    chunk=st.integers(1, 500),
    gaps=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_search_equals_searchsorted(tmp_path_factory, n, chunk, gaps, seed):
    rng = np.random.default_rng(seed)
    steps = rng.exponential(1.0, n) if gaps else np.full(n, 0.0008)
    if gaps:
        steps[rng.integers(0, n, size=3)] = 50.0  # recording gaps break the uniform guess
        steps[rng.random(n) < 0.05] = 0.0  # repeated timestamps
    timestamps = np.cumsum(steps) + 30.0
    path = tmp_path_factory.mktemp("lfp") / "probe_1_lfp.nwb"
    write_lfp(path, timestamps, min(chunk, n))
    lfp = ProbeLFPFile(path, 1)
    probes = np.concatenate(
        [
            timestamps[rng.integers(0, n, 20)],
            rng.uniform(timestamps[0] - 5, timestamps[-1] + 5, 20),
            [-np.inf, np.inf],
        ]
    )
    for value in probes:
        for side in ("left", "right"):
            assert lfp._search(float(value), side) == np.searchsorted(timestamps, value, side=side), (
                value,
                side,
            )


@pytest.mark.parametrize("window", [(30.0, 30.5), (31.0, 32.0), (0.0, 29.0), (100.0, 200.0)])
def test_read_window_matches_a_full_read(tmp_path, window):
    timestamps = 30.0 + np.arange(2000) * 0.0008
    path = tmp_path / "probe_1_lfp.nwb"
    write_lfp(path, timestamps, 128)
    lfp = ProbeLFPFile(path, 1)
    part = lfp.read(time=slice(*window))
    expected = timestamps[(timestamps >= window[0]) & (timestamps <= window[1])]
    np.testing.assert_array_equal(part["time"].values, expected)
    assert part["channel"].values.tolist() == [10, 20]
