"""Defaults and environment variables.

``ECEPHYS_CACHE_DIR``
    Where downloaded and generated files go (default: the platform's user cache folder,
    ``~/.cache/ecephys`` on Linux, following ``XDG_CACHE_HOME``).
``ECEPHYS_OFFLINE``
    ``1``/``true``: never touch the network; use only what the cache holds.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["cache_dir", "offline"]


def cache_dir() -> Path:
    """The cache folder: ``$ECEPHYS_CACHE_DIR``, else the platform's user cache folder + ``ecephys``."""
    explicit = os.environ.get("ECEPHYS_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "ecephys"
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "ecephys" / "Cache"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ecephys"


def offline() -> bool:
    """Whether ``ECEPHYS_OFFLINE`` asks for no network access."""
    return os.environ.get("ECEPHYS_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
