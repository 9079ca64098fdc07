"""Fixtures and helpers shared by tests/sources and tests/cache: servers on 127.0.0.1, payloads,
a small multi-session project folder in the AllenSDK cache layout, a fake sleep.

Each conftest imports the fixtures it uses from here.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import h5py
import pandas as pd
import pytest

from ecephys.cache.download import fetch
from ecephys.nwb.allen import AllenSessionFile
from ecephys.sources import HTTPSource, RetryPolicy
from ecephys.testing import make_session
from ecephys.testing.servers import FileServer, MotoS3, moto_s3
from ecephys.testing.warehouse import WarehouseServer

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "fixtures"
TINY = FIXTURES / "vcn2020_tiny"
REAL_CACHE = SHARED / "real_data" / "allen_vcnp_ecephys_cache"
SESSION_NWB = TINY / "session_999000001" / "session_999000001.nwb"
LFP_NWB = TINY / "session_999000001" / "probe_999001018_lfp.nwb"
PROJECT_SESSIONS = (990000001, 991000001, 992000001)  # a million apart: make_session's id ranges


def need(path: Path) -> Path:
    """Skip the test when a shared fixture file is absent."""
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


# ------------------------------------------------------------------ a small project folder


def make_project(folder: Path) -> Path:
    """Three synthetic sessions plus sessions.csv and probes.csv written like the real ones.

    The last session's probeB has no LFP file and the real file's quirks: has_lfp_data False,
    an empty subsampling factor and a 0.0 sampling rate.
    """
    sessions, probes = [], []
    for number, sid in enumerate(PROJECT_SESSIONS):
        files = make_session(
            folder,
            session_id=sid,
            seed=number,
            n_probes=2,
            units_per_probe=4,
            duration=30.0,
            lfp_duration=2.0,
            channels_per_probe=32,
        )
        sessions.append(_session_row(files.session_path, sid, number))
        for pid in files.lfp_paths:
            probes.append(_probe_row(files.session_path, sid, pid))
        if number == len(PROJECT_SESSIONS) - 1:
            last = probes[-1]
            files.lfp_paths[last["id"]].unlink()
            last.update(has_lfp_data=False, lfp_temporal_subsampling_factor=None, sampling_rate=0.0)
    pd.DataFrame(sessions).to_csv(folder / "sessions.csv", index=False)
    pd.DataFrame(probes).to_csv(folder / "probes.csv", index=False)
    channels = pd.concat([_channel_rows(folder, sid) for sid in PROJECT_SESSIONS], ignore_index=True)
    channels.to_csv(folder / "channels.csv", index=False)
    units = pd.concat([_unit_rows(folder, sid) for sid in PROJECT_SESSIONS], ignore_index=True)
    units.to_csv(folder / "units.csv", index=False)
    return folder


def _session_file(folder: Path, sid: int) -> Path:
    return folder / f"session_{sid}" / f"session_{sid}.nwb"


def _channel_rows(folder: Path, sid: int) -> pd.DataFrame:
    """channels.csv rows (the warehouse's tabular columns) from a session file's electrodes."""
    electrodes = AllenSessionFile(_session_file(folder, sid)).electrodes
    acronyms = electrodes["location"].where(~electrodes["location"].isin(["", "None"]))
    structure_ids = acronyms.map(lambda a: float(sum(map(ord, a)) if isinstance(a, str) else "nan"))
    return pd.DataFrame(
        {
            "id": electrodes.index,
            "ecephys_probe_id": electrodes["probe_id"].to_numpy(),
            "local_index": electrodes["probe_channel_number"].to_numpy(),
            "probe_horizontal_position": electrodes["probe_horizontal_position"].to_numpy(),
            "probe_vertical_position": electrodes["probe_vertical_position"].to_numpy(),
            "anterior_posterior_ccf_coordinate": electrodes["x"].to_numpy(),
            "dorsal_ventral_ccf_coordinate": electrodes["y"].to_numpy(),
            "left_right_ccf_coordinate": electrodes["z"].to_numpy(),
            "ecephys_structure_id": structure_ids.to_numpy(dtype=float),
            "ecephys_structure_acronym": acronyms.to_numpy(dtype=object),
        }
    )


def _unit_rows(folder: Path, sid: int) -> pd.DataFrame:
    """units.csv rows (the warehouse's columns) from a session file's units table."""
    units = AllenSessionFile(_session_file(folder, sid)).units
    renamed = units.rename(
        columns={
            "peak_channel_id": "ecephys_channel_id",
            "waveform_duration": "duration",
            "waveform_halfwidth": "halfwidth",
        }
    )
    columns = [
        "ecephys_channel_id", "quality", "snr", "firing_rate", "isi_violations", "presence_ratio",
        "amplitude_cutoff", "isolation_distance", "l_ratio", "d_prime", "nn_hit_rate", "nn_miss_rate",
        "silhouette_score", "max_drift", "cumulative_drift", "duration", "halfwidth", "PT_ratio",
        "repolarization_slope", "recovery_slope", "amplitude", "spread", "velocity_above", "velocity_below",
    ]  # fmt: skip
    table = renamed.reindex(columns=columns).reset_index()
    table.insert(16, "epoch_name_quality_metrics", "complete_session")
    table.insert(17, "epoch_name_waveform_metrics", "complete_session")
    return table


def _session_row(path: Path, sid: int, number: int) -> dict[str, object]:
    """A sessions.csv row (real column order) from a session file's subject metadata."""
    with h5py.File(path, "r") as nwb:
        subject = {k: nwb["general/subject"][k][()].decode() for k in ("age", "sex", "genotype")}
    return {
        "id": sid,
        "date_of_acquisition": "2019-01-19T08:54:18Z",
        "isi_experiment_id": 705968051 + number,
        "published_at": "2019-10-03T00:00:00Z",
        "specimen_id": 699733581 + number,
        "session_type": "brain_observatory_1.1" if number % 2 == 0 else "functional_connectivity",
        "age_in_days": float(subject["age"].strip("PD")),
        "sex": subject["sex"],
        "genotype": subject["genotype"] if number else "wt/wt",
        "has_nwb": True,
    }


def _probe_row(path: Path, sid: int, pid: int) -> dict[str, object]:
    """A probes.csv row (real column order) from the session file's probe group."""
    with h5py.File(path, "r") as nwb:
        group = next(
            g
            for name, g in nwb["general/extracellular_ephys"].items()
            if g.attrs.get("probe_id", None) == pid
        )
        name = group.name.rsplit("/", 1)[-1]
        lfp_rate = float(group.attrs["lfp_sampling_rate"])
    return {
        "id": pid,
        "air_channel_index": 384,
        "ecephys_session_id": sid,
        "lfp_sampling_rate": lfp_rate * 2.0,
        "lfp_temporal_subsampling_factor": 2.0,
        "name": name,
        "phase": "3a",
        "sampling_rate": 29999.9674184945,
        "surface_channel_index": 336,
        "has_lfp_data": True,
    }


# ------------------------------------------------------------------ fixtures
BUCKET = "allen-brain-observatory"
PREFIX = "visual-coding-neuropixels/ecephys-cache/"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoS3]:
    """moto's S3 server on 127.0.0.1 and a free port, stopped after the module."""
    server = moto_s3()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A three-session project folder (read-only by convention; copy before changing it)."""
    return make_project(tmp_path_factory.mktemp("project"))


@pytest.fixture
def file_server() -> Iterator[FileServer]:
    """A Range-aware file server on 127.0.0.1 and a free port, stopped after the test."""
    with FileServer() as server:
        yield server


@pytest.fixture
def project_warehouse(project: Path) -> Iterator[WarehouseServer]:
    """The warehouse emulator over the three-session project."""
    with WarehouseServer(project) as server:
        yield server


@pytest.fixture(scope="module")
def real_warehouse() -> Iterator[WarehouseServer]:
    """The warehouse emulator over the real sessions.csv and probes.csv (58 sessions, 332 probes)."""
    need(REAL_CACHE / "probes.csv")
    with WarehouseServer(REAL_CACHE) as server:
        yield server


@pytest.fixture(scope="module")
def tiny_warehouse() -> Iterator[WarehouseServer]:
    """The warehouse emulator over the AllenSDK-written vcn2020_tiny fixture."""
    need(TINY / "units.csv")
    with WarehouseServer(TINY) as server:
        yield server


@pytest.fixture
def payload() -> Path:
    """An AllenSDK-written session NWB file (2.6 MB), read-only."""
    return need(SESSION_NWB)


@pytest.fixture
def sleeps() -> list[float]:
    """The waits a RetryPolicy asked for (nothing really sleeps)."""
    return []


@pytest.fixture
def policy(sleeps: list[float]) -> RetryPolicy:
    """A retry policy with a fake sleep that records its delays."""
    return RetryPolicy(retries=6, base=0.5, cap=8.0, sleep=sleeps.append)


def copy_tree(source: Path, destination: Path) -> Path:
    """A writable copy of a fixture folder (CSV files and session folders only)."""
    shutil.copytree(source, destination, ignore=shutil.ignore_patterns("reference", "fixture_params.json"))
    for path in destination.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return destination


def fetch_in_child(base_url: str, key: str, target: str) -> tuple[str, int, float, float]:
    """Run in another process: fetch one file; the path, the process id, start and end times (s)."""
    import os
    import time

    started = time.time()
    path = fetch(HTTPSource(base_url, timeout=10), key, target, progress=False, lock_timeout=60)
    return str(path), os.getpid(), started, time.time()
