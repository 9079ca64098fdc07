"""``ecephys export``: a session file (local or over HTTP) to Parquet, MAT or JSON, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io

from ecephys.cli import main
from ecephys.nwb_session import open_nwb
from tests.reference import SESSION_ID, session_path

SESSION = session_path("vcn2020_tiny")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def expected_session() -> tuple[pd.DataFrame, dict[int, np.ndarray]]:
    """The units table and spike trains as open_nwb reads them from the fixture (every unit)."""
    with open_nwb(SESSION) as session:
        return session.units, {int(u): np.asarray(t) for u, t in session.spike_times.items()}


def test_export_json_of_chosen_tables(capsys, tmp_path):
    code, out, err = run(
        capsys, "export", SESSION, tmp_path, "--format", "json", "--tables", "units,spike_times"
    )
    assert code == 0, err
    folder = tmp_path / str(SESSION_ID)
    assert sorted(Path(line) for line in out.splitlines()) == sorted(folder.iterdir())
    assert sorted(p.name for p in folder.iterdir()) == ["session.json", "spike_times.json", "units.json"]
    units, trains = expected_session()
    records = json.loads((folder / "units.json").read_text())
    assert [r[units.index.name] for r in records] == units.index.tolist()
    assert [r["firing_rate"] for r in records] == units["firing_rate"].tolist()
    back = json.loads((folder / "spike_times.json").read_text())
    assert sorted(map(int, back)) == sorted(trains)
    for unit_id, train in trains.items():
        np.testing.assert_array_equal(back[str(unit_id)], train)


def test_export_mat_then_overwrite(capsys, tmp_path):
    code, _, err = run(capsys, "export", SESSION, tmp_path, "--format", "mat", "--tables", "invalid_times")
    assert code == 0, err
    code, _, err = run(capsys, "export", SESSION, tmp_path, "--format", "mat")
    assert code == 1
    assert err.strip().count("\n") == 0
    assert err.startswith("ecephys export: error: session 999000001:") and "--overwrite" in err
    assert set(scipy.io.loadmat(tmp_path / f"{SESSION_ID}.mat")) >= {"invalid_times"}
    assert "units" not in scipy.io.loadmat(tmp_path / f"{SESSION_ID}.mat")  # the first export is intact
    code, _, err = run(capsys, "export", SESSION, tmp_path, "--format", "mat", "--overwrite")
    assert code == 0, err
    mat = scipy.io.loadmat(tmp_path / f"{SESSION_ID}.mat", simplify_cells=True)
    units, trains = expected_session()
    assert mat["units"][units.index.name].tolist() == units.index.tolist()
    for unit_id, cell in zip(mat["unit_ids"], mat["spike_times"], strict=True):
        np.testing.assert_array_equal(cell, trains[int(unit_id)])


def test_export_streams_a_url(capsys, tmp_path, file_server):
    url = file_server.add_file(f"data/session_{SESSION_ID}.nwb", SESSION)
    code, _, err = run(capsys, "export", url, tmp_path, "--tables", "units,spike_times")
    assert code == 0, err
    assert file_server.bytes_sent > 0
    spikes = pd.read_parquet(tmp_path / str(SESSION_ID) / "spike_times.parquet")
    _, trains = expected_session()
    for unit_id, train in trains.items():
        np.testing.assert_array_equal(spikes.loc[spikes["unit_id"] == unit_id, "spike_time"], train)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["/nonexistent/session.nwb"], "no such NWB file"),
        ([SESSION, "--tables", "units,bogus"], "has no table 'bogus'"),
        ([__file__], "not an HDF5 file"),
    ],
)
def test_errors_are_one_line_and_exit_1(capsys, tmp_path, argv, message):
    code, out, err = run(capsys, "export", argv[0], tmp_path, *argv[1:])
    assert code == 1
    assert out == ""
    assert err.startswith("ecephys export: error: ") and message in err
    assert err.strip().count("\n") == 0
    assert list(tmp_path.iterdir()) == []


def test_bad_format_is_a_usage_error(capsys, tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["export", str(SESSION), str(tmp_path), "--format", "xlsx"])
    assert info.value.code == 2
    assert "invalid choice: 'xlsx'" in capsys.readouterr().err


def test_the_installed_command(tmp_path):
    command = Path(sys.executable).parent / "ecephys"
    argv = [str(command), "export", str(SESSION), str(tmp_path), "--tables", "units"]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    units, _ = expected_session()
    back = pd.read_parquet(Path(proc.stdout.splitlines()[0]))
    assert back.index.tolist() == units.index.tolist()
    assert back["firing_rate"].tolist() == units["firing_rate"].tolist()
