"""Check, outside CI, the stimulus and behaviour answers for sessions the fixtures do not cover.

    python bench/check_allensdk_edge_cases.py [--allensdk-python PATH] [--keep DIR]

Writes small ``make_session`` files (both layouts) with the edge cases of the issue "Stimuli
and behaviour": functional_connectivity stimuli (``dot_motion`` with ``Dir``, ``Speed``,
``dotLife``, ...), both schedules, a stimulus whose parameters are all NaN, and sessions
without eye tracking, optotagging, invalid times or running data. The AllenSDK 2.16.2 reads
each in its own interpreter (this script calls itself there with ``--dump``); ecephys reads
the same file through ``ecephys.open_session``. One line per session and answer; answers that
differ on purpose (``docs/differences.md``) are marked "expected". Exit status 1 when anything
else differs.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_ALLENSDK = HERE / "_venvs" / "allensdk" / "bin" / "python"
SMALL = dict(n_probes=1, units_per_probe=3, duration=300.0, channels_per_probe=32, lfp=False, seed=5)
CASES = {  # name: make_session arguments over SMALL
    "fc": dict(session_type="functional_connectivity", all_nan_stimulus=True),
    "fc-full": dict(session_type="functional_connectivity", stimulus_schedule="full"),
    "bo-full": dict(stimulus_schedule="full", all_nan_stimulus=True),
    "bare": dict(eye_tracking=False, optotagging=False, invalid_times=False, all_nan_stimulus=True),
    "fc-bare": dict(session_type="functional_connectivity", eye_tracking=False, optotagging=False),
}
NO_RUNNING = "bare"  # this case is also checked with /processing/running deleted
# (cases, answer): why ecephys answers otherwise on purpose
EXPECTED = {
    (
        ("bare", "fc-bare", "no-running"),
        "optogenetic_stimulation_epochs",
    ): "a typed empty table, not KeyError",
    (("bare", "no-running"), "invalid_times"): "an empty table with start_time, stop_time, tags",
}
ANSWERS = (
    "stimulus_presentations",
    "stimulus_conditions",
    "stimulus_names",
    "get_stimulus_epochs",
    "get_stimulus_epochs_spontaneous_90",
    "get_stimulus_table",
    "get_stimulus_table_detailed_unused",
    "get_stimulus_parameter_values",
    "invalid_times",
    "optogenetic_stimulation_epochs",
    "get_pupil_data",
    "get_screen_gaze_data",
    "running_speed",
    "session_type",
)


def _ask(session, name: str):
    """One answer of a session object (the AllenSDK's or ours: the same public names)."""
    calls = {
        "get_stimulus_epochs": lambda: session.get_stimulus_epochs(duration_thresholds={}),
        "get_stimulus_epochs_spontaneous_90": lambda: session.get_stimulus_epochs({"spontaneous": 90.0}),
        "get_stimulus_table": lambda: session.get_stimulus_table(),
        "get_stimulus_table_detailed_unused": lambda: session.get_stimulus_table(
            include_detailed_parameters=True, include_unused_parameters=True
        ),
        "get_stimulus_parameter_values": lambda: session.get_stimulus_parameter_values(),
        "get_pupil_data": session.get_pupil_data,
        "get_screen_gaze_data": lambda: session.get_screen_gaze_data(include_filtered_data=True),
    }
    return calls[name]() if name in calls else getattr(session, name)


def _encode(value) -> dict:
    """An answer as JSON: a table (CSV text and dtypes), None, an error, or a plain value."""
    import numpy as np
    import pandas as pd

    if value is None:
        return {"kind": "None"}
    if isinstance(value, pd.DataFrame):
        frame = value[sorted(value.columns, key=str)]
        return {
            "kind": "table",
            "csv": frame.to_csv(),
            "dtypes": {str(c): str(t) for c, t in frame.dtypes.items()},
            "index": [str(value.index.name), str(value.index.dtype)],
        }
    if isinstance(value, dict):
        return {
            "kind": "dict",
            "value": {k: [repr(x) for x in np.asarray(v).tolist()] for k, v in value.items()},
        }
    return {"kind": "value", "value": repr(list(value) if isinstance(value, list | tuple) else value)}


def _answers(session) -> dict:
    out = {}
    for name in ANSWERS:
        try:
            out[name] = _encode(_ask(session, name))
        except Exception as exc:  # noqa: BLE001 - recording what each library raises is the point
            out[name] = {"kind": "error", "type": type(exc).__name__, "keyerror": isinstance(exc, KeyError)}
    return out


def _dump(path: str, out_json: str) -> None:
    """Runs inside the AllenSDK's venv."""
    from allensdk.brain_observatory.ecephys.ecephys_session import EcephysSession

    warnings.simplefilter("ignore")
    session = EcephysSession.from_nwb_path(path)
    Path(out_json).write_text(json.dumps(_answers(session)))


def _ours(path: Path) -> dict:
    import ecephys

    warnings.simplefilter("ignore")
    return _answers(ecephys.open_session(path))


def _differences(theirs: dict, ours: dict) -> str | None:
    """What differs between two encoded answers, or None."""
    import pandas as pd

    if theirs["kind"] != ours["kind"]:
        return f"AllenSDK {_show(theirs)}; ecephys {_show(ours)}"
    if theirs["kind"] == "error":
        return None if theirs["keyerror"] == ours["keyerror"] else f"AllenSDK {theirs}, ecephys {ours}"
    if theirs["kind"] != "table":
        return (
            None if theirs == ours else f"AllenSDK {theirs['value']!r:.200}, ecephys {ours['value']!r:.200}"
        )
    if theirs["dtypes"] != ours["dtypes"] or theirs["index"] != ours["index"]:
        diff = {
            c: (ours["dtypes"].get(c), t) for c, t in theirs["dtypes"].items() if ours["dtypes"].get(c) != t
        }
        extra = sorted(set(ours["dtypes"]) - set(theirs["dtypes"]))
        return f"dtypes (ecephys, AllenSDK) {diff}, extra {extra}, index {ours['index']} vs {theirs['index']}"
    a = pd.read_csv(io.StringIO(theirs["csv"]), index_col=0)
    b = pd.read_csv(io.StringIO(ours["csv"]), index_col=0)
    try:
        pd.testing.assert_frame_equal(b, a, check_exact=False, rtol=1e-12)
    except AssertionError as err:
        return f"values: {str(err)[:300]}"
    return None


def _show(answer: dict) -> str:
    """A short description of an answer: its shape, kind of error, or kind."""
    if answer["kind"] == "table":
        rows = answer["csv"].count("\n") - 1
        return f"table, {rows} rows x {len(answer['dtypes'])} columns"
    if answer["kind"] == "error":
        return f"{answer['type']}" + (
            " (a KeyError)" if answer["keyerror"] and answer["type"] != "KeyError" else ""
        )
    return answer["kind"]


def _expected(case: str, name: str) -> str | None:
    return next((why for (cases, answer), why in EXPECTED.items() if case in cases and answer == name), None)


def _write_sessions(folder: Path) -> dict[str, Path]:
    import h5py

    from ecephys.testing import make_session

    paths = {}
    for layout in ("vcn2020", "sdk2162"):
        for case, kwargs in CASES.items():
            files = make_session(folder / f"{case}-{layout}", layout=layout, **SMALL, **kwargs)
            paths[f"{case}/{layout}"] = files.session_path
    source = paths[f"{NO_RUNNING}/vcn2020"]
    target = folder / "no-running" / source.name
    target.parent.mkdir()
    target.write_bytes(source.read_bytes())
    with h5py.File(target, "r+") as nwb:
        del nwb["processing/running"]
    paths["no-running/vcn2020"] = target
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--allensdk-python", type=Path, default=DEFAULT_ALLENSDK)
    parser.add_argument("--keep", type=Path, help="write the sessions here and keep them")
    parser.add_argument("--dump", nargs=2, metavar=("PATH", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dump:
        _dump(*args.dump)
        return 0
    if not args.allensdk_python.exists():
        print(f"no AllenSDK interpreter at {args.allensdk_python}: run bench/peers.sh", file=sys.stderr)
        return 2
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        for label, path in _write_sessions(folder).items():
            out = Path(tmp) / f"{label.replace('/', '-')}.json"
            proc = subprocess.run(
                [str(args.allensdk_python), __file__, "--dump", str(path), str(out)],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                print(f"{label}: the AllenSDK failed:\n{proc.stderr[-3000:]}")
                failures += 1
                continue
            theirs, ours = json.loads(out.read_text()), _ours(path)
            case = label.split("/")[0]
            for name in ANSWERS:
                problem = _differences(theirs[name], ours[name])
                if problem is None and theirs[name]["kind"] == "error":
                    status = f"same: AllenSDK {_show(theirs[name])}, ecephys {_show(ours[name])}"
                elif problem is None:
                    status = f"same: {_show(ours[name])}"
                elif _expected(case, name):
                    status = f"expected difference ({_expected(case, name)}): {problem}"
                else:
                    status = f"DIFFERENT: {problem}"
                    failures += 1
                print(f"{label:22} {name:36} {status}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
