"""Table cells shared by the bench scripts: seconds, speed-up against the AllenSDK, ratio to raw h5py."""

from __future__ import annotations


def speed_cells(ours: dict | None, theirs: dict | None, raw: dict | None) -> tuple[str, str, str, str, str]:
    """(ecephys s, AllenSDK s, h5py s, AllenSDK/ecephys, ecephys/h5py) as printable cells; '-' if absent."""

    def seconds(result: dict | None) -> str:
        return "-" if result is None else f"{result['seconds']:.3f}"

    speedup = f"{theirs['seconds'] / ours['seconds']:.0f}x" if ours and theirs else "-"
    ratio = f"{ours['seconds'] / raw['seconds']:.2f}x" if ours and raw else "-"
    return seconds(ours), seconds(theirs), seconds(raw), speedup, ratio
