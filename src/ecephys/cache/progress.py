"""Progress bars for downloads (tqdm, imported only when a bar is shown) and byte formatting."""

from __future__ import annotations

import sys
from typing import Any, Protocol

from ecephys.errors import MissingDependency

__all__ = ["ProgressBar", "human_size", "progress_bar", "wants_progress"]


class ProgressBar(Protocol):
    """What a download needs from a bar: count bytes, start over, close."""

    def update(self, n: int) -> Any:
        """Count ``n`` more bytes."""

    def reset(self, total: int | None = None) -> Any:
        """Start counting from 0 again (a download that starts over)."""

    def close(self) -> Any:
        """Remove the bar."""


class _Silent:
    """A bar that shows nothing."""

    def update(self, n: int) -> None:
        """Ignore ``n`` bytes."""

    def reset(self, total: int | None = None) -> None:
        """Nothing to reset."""

    def close(self) -> None:
        """Nothing to close."""


def human_size(n: int | float | None) -> str:
    """Bytes as a short decimal figure: ``2.7 GB``, ``512 kB``, ``17 B``; ``unknown size`` for None."""
    if n is None:
        return "unknown size"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if abs(value) < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def wants_progress(progress: bool | None) -> bool:
    """``progress`` if given, else whether stderr is a terminal."""
    if progress is not None:
        return progress
    stream = sys.stderr
    return bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())


def progress_bar(
    total: int | None, *, desc: str, initial: int = 0, progress: bool | None = None
) -> ProgressBar:
    """A tqdm byte counter named ``desc`` with ``total`` bytes, or a silent one.

    ``progress`` None shows the bar only on a terminal; True insists (MissingDependency
    without tqdm); False never shows it.
    """
    if not wants_progress(progress):
        return _Silent()
    try:
        from tqdm.auto import tqdm
    except ImportError as exc:
        if progress:
            raise MissingDependency(
                "progress bars need tqdm: pip install 'ecephys[progress]', or pass progress=False"
            ) from exc
        return _Silent()
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1000,
        leave=False,
        dynamic_ncols=True,
    )
