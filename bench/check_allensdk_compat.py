"""Check, outside CI, that the AllenSDK 2.16.2 reads a ``make_session`` file as ecephys does.

    python bench/check_allensdk_compat.py                # makes a small session of each layout
    python bench/check_allensdk_compat.py --session PATH # any session file (LFP files beside it)

The AllenSDK runs in its own virtual environment (``bench/peers.sh``); this script calls
itself there with ``--dump`` to write the AllenSDK's answers as JSON (tables as CSV text plus
dtypes, arrays as sha256), then compares them with ecephys' answers on the same file and
prints one line per check. Exit status 1 when anything differs.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_ALLENSDK = Path(
    os.environ.get("ECEPHYS_BENCH_ALLENSDK_PYTHON", HERE / "_venvs" / "allensdk" / "bin" / "python")
)
ALL_UNITS = dict(
    amplitude_cutoff_maximum=float("inf"),
    presence_ratio_minimum=float("-inf"),
    isi_violations_maximum=float("inf"),
    filter_by_validity=False,
    filter_out_of_brain_units=False,
)
TABLES = ("units", "channels", "probes", "stimulus_presentations", "stimulus_conditions", "invalid_times")


def _sha(array) -> str:
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _table(frame) -> dict:
    frame = frame[sorted(frame.columns, key=str)]
    return {"csv": frame.to_csv(), "dtypes": {str(c): str(t) for c, t in frame.dtypes.items()}}


def _answers(session, lfp_probe_ids: list[int]) -> dict:
    """The comparable answers of a session object (AllenSDK's or ours: same names)."""
    out: dict = {"tables": {}, "arrays": {}}
    for name in TABLES:
        out["tables"][name] = _table(getattr(session, name))
    out["arrays"]["spike_times"] = {str(u): _sha(t) for u, t in session.spike_times.items()}
    out["arrays"]["spike_amplitudes"] = {str(u): _sha(a) for u, a in session.spike_amplitudes.items()}
    out["arrays"]["mean_waveforms"] = {
        str(u): [_sha(w.values), _sha(w["channel_id"].values)] for u, w in session.mean_waveforms.items()
    }
    out["arrays"]["lfp"] = {}
    for probe_id in lfp_probe_ids:
        lfp = session.get_lfp(probe_id)
        out["arrays"]["lfp"][str(probe_id)] = [_sha(lfp.values), _sha(lfp["time"].values), str(lfp.dtype)]
    out["scalars"] = {
        "num_units": int(session.num_units),
        "num_stimulus_presentations": int(session.num_stimulus_presentations),
        "session_type": session.session_type,
        "specimen_name": session.specimen_name,
    }
    return out


def _dump(path: str, out_json: str, filtered: bool) -> None:
    """Runs inside the AllenSDK's venv."""
    from functools import partial

    from allensdk.brain_observatory.ecephys.ecephys_session import EcephysSession
    from allensdk.brain_observatory.nwb.nwb_api import NwbApi  # noqa: F401 (import check)
    from pynwb import NWBHDF5IO

    def read_nwb(p):
        return NWBHDF5IO(p, "r", load_namespaces=True).read()

    warnings.simplefilter("ignore")
    folder = Path(path).parent
    lfp_paths = {int(p.name.split("_")[1]): p for p in folder.glob("probe_*_lfp.nwb")}
    api_kwargs = {} if filtered else dict(ALL_UNITS)
    api_kwargs["probe_lfp_paths"] = {pid: partial(read_nwb, str(p)) for pid, p in lfp_paths.items()}
    session = EcephysSession.from_nwb_path(path, api_kwargs=api_kwargs)
    Path(out_json).write_text(json.dumps(_answers(session, sorted(lfp_paths))))


def _ours(path: Path, filtered: bool) -> dict:
    import ecephys

    warnings.simplefilter("ignore")
    lfp_probe_ids = sorted(int(p.name.split("_")[1]) for p in path.parent.glob("probe_*_lfp.nwb"))
    session = ecephys.open_session(path, **({} if filtered else ALL_UNITS))
    return _answers(session, lfp_probe_ids)


def _compare(theirs: dict, ours: dict) -> list[str]:
    import pandas as pd

    problems = []
    for name, table in theirs["tables"].items():
        mine = ours["tables"][name]
        if table["dtypes"] != mine["dtypes"]:
            diff = {
                c: (mine["dtypes"].get(c), t)
                for c, t in table["dtypes"].items()
                if mine["dtypes"].get(c) != t
            }
            extra = sorted(set(mine["dtypes"]) - set(table["dtypes"]))
            problems.append(f"{name}: dtypes differ (ours, AllenSDK): {diff} extra: {extra}")
            continue
        a = pd.read_csv(io.StringIO(table["csv"]), index_col=0)
        b = pd.read_csv(io.StringIO(mine["csv"]), index_col=0)
        try:
            pd.testing.assert_frame_equal(b, a, check_exact=False, rtol=1e-12)
        except AssertionError as err:
            problems.append(f"{name}: values differ: {str(err)[:300]}")
    for kind, values in theirs["arrays"].items():
        if values != ours["arrays"][kind]:
            bad = [k for k in values if values[k] != ours["arrays"][kind].get(k)]
            extra = sorted(set(ours["arrays"][kind]) - set(values))
            problems.append(f"{kind}: {len(bad)} differ (e.g. {bad[:3]}), extra keys {extra[:3]}")
    if theirs["scalars"] != ours["scalars"]:
        problems.append(f"scalars: AllenSDK {theirs['scalars']} vs ours {ours['scalars']}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--session", type=Path)
    parser.add_argument("--allensdk-python", type=Path, default=DEFAULT_ALLENSDK)
    parser.add_argument("--dump", nargs=3, metavar=("PATH", "OUT", "FILTERED"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.dump:
        _dump(args.dump[0], args.dump[1], args.dump[2] == "1")
        return 0
    if not args.allensdk_python.exists():
        print(f"no AllenSDK interpreter at {args.allensdk_python}: run bench/peers.sh", file=sys.stderr)
        return 2

    with tempfile.TemporaryDirectory() as tmp:
        if args.session:
            sessions = {"given": args.session}
        else:
            from ecephys.testing import make_session

            sessions = {}
            for layout in ("vcn2020", "sdk2162"):
                files = make_session(
                    Path(tmp) / layout, layout=layout, seed=3, duration=300.0, units_per_probe=12
                )
                sessions[layout] = files.session_path
        failures = 0
        for label, path in sessions.items():
            for filtered in (False, True):
                out = Path(tmp) / f"{label}-{int(filtered)}.json"
                proc = subprocess.run(
                    [str(args.allensdk_python), __file__, "--dump", str(path), str(out), str(int(filtered))],
                    capture_output=True,
                    text=True,
                    check=False,
                )
                if proc.returncode != 0:
                    print(f"{label} filtered={filtered}: the AllenSDK failed:\n{proc.stderr[-3000:]}")
                    failures += 1
                    continue
                problems = _compare(json.loads(out.read_text()), _ours(Path(path), filtered))
                status = "same answers" if not problems else "DIFFERENT"
                print(f"{label:8} {'default filters' if filtered else 'all units':16} {status}")
                for problem in problems:
                    print(f"    {problem}")
                failures += bool(problems)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
