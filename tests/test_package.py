"""The package's public surface and import weight."""

from __future__ import annotations

import subprocess
import sys

import ecephys
from ecephys import config


def test_all_is_sorted_and_importable():
    assert list(ecephys.__all__) == sorted(ecephys.__all__)
    for name in ecephys.__all__:
        assert hasattr(ecephys, name), name


def test_import_stays_light():
    code = (
        "import sys, ecephys; "
        "heavy = ('matplotlib', 'dask', 'boto3', 'tqdm', 'pynwb', 'distributed'); "
        "heavy = [m for m in heavy if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out == ""


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("ECEPHYS_CACHE_DIR", str(tmp_path / "c"))
    assert config.cache_dir() == tmp_path / "c"
    monkeypatch.delenv("ECEPHYS_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    if sys.platform.startswith("linux"):
        assert config.cache_dir() == tmp_path / "xdg" / "ecephys"


def test_offline_flag(monkeypatch):
    monkeypatch.setenv("ECEPHYS_OFFLINE", "1")
    assert config.offline()
    monkeypatch.setenv("ECEPHYS_OFFLINE", "0")
    assert not config.offline()
