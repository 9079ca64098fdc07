"""Fixtures and helpers shared by tests/sources and tests/cache: servers on 127.0.0.1, payloads,
a small multi-session project folder in the AllenSDK cache layout (``ecephys.testing.project``),
a fake sleep.

Each conftest imports the fixtures it uses from here.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecephys.cache.download import fetch
from ecephys.demo import ensure_demo_project
from ecephys.sources import HTTPSource, RetryPolicy
from ecephys.testing import project as synthetic_project
from ecephys.testing.project import make_project
from ecephys.testing.servers import FileServer, MotoS3, moto_s3
from ecephys.testing.warehouse import WarehouseServer

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
FIXTURES = SHARED / "fixtures"
TINY = FIXTURES / "vcn2020_tiny"
REAL_CACHE = SHARED / "real_data" / "allen_vcnp_ecephys_cache"
SESSION_NWB = TINY / "session_999000001" / "session_999000001.nwb"
LFP_NWB = TINY / "session_999000001" / "probe_999001018_lfp.nwb"
PROJECT_SESSIONS = tuple(s.session_id for s in synthetic_project.PROJECT_SESSIONS)  # a million apart


def need(path: Path) -> Path:
    """Skip the test when a shared fixture file is absent."""
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


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


@pytest.fixture(scope="session")
def tutorial_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's project folder: three sessions of six probes (read-only by convention)."""
    folder = tmp_path_factory.mktemp("tutorial") / "demo-project"
    return ensure_demo_project(folder, say=lambda text: None)


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
