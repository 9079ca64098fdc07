"""The ``ecephys`` command over the synthetic project: local folder, warehouse emulator, errors."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from ecephys import EcephysProjectCache
from ecephys.cli import main
from tests.transport import PROJECT_SESSIONS


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def host(server) -> str:
    return server.base_url.split("://", 1)[1]


def test_sessions_from_a_local_folder(capsys, project):
    code, out, _ = run(capsys, "sessions", "--source", "local", "--cache", str(project), "--format", "csv")
    assert code == 0
    table = pd.read_csv(io.StringIO(out), index_col=0)
    assert table.index.tolist() == list(PROJECT_SESSIONS)
    session_type = table["session_type"].iloc[0]
    code, out, _ = run(
        capsys,
        "sessions",
        "--source",
        "local",
        "--cache",
        str(project),
        "--session-type",
        session_type,
        "--format",
        "json",
    )
    assert code == 0 and out.count('"id"') == (table["session_type"] == session_type).sum()


def test_sessions_filtered_by_structure(capsys, project):
    table = EcephysProjectCache(project).get_session_table()
    structure = str(table["ecephys_structure_acronyms"].iloc[0][0])
    expected = [
        sid for sid, acronyms in table["ecephys_structure_acronyms"].items() if structure in list(acronyms)
    ]
    argv = ["sessions", "--source", "local", "--cache", str(project), "--format", "csv"]
    code, out, _ = run(capsys, *argv, "--structure", structure)
    assert code == 0
    assert pd.read_csv(io.StringIO(out))["id"].tolist() == expected
    code, out, _ = run(capsys, *argv, "--structure", "NOPE")
    assert len(pd.read_csv(io.StringIO(out))) == 0


def test_units_with_and_without_quality_filters(capsys, project):
    sid = str(PROJECT_SESSIONS[0])
    _, filtered, _ = run(
        capsys, "units", "--session", sid, "--source", "local", "--cache", str(project), "--format", "csv"
    )
    _, everything, _ = run(
        capsys,
        "units",
        "--session",
        sid,
        "--source",
        "local",
        "--cache",
        str(project),
        "--no-quality-filters",
        "--format",
        "csv",
    )
    filtered_units = pd.read_csv(io.StringIO(filtered), index_col="unit_id")
    all_units = pd.read_csv(io.StringIO(everything), index_col="unit_id")
    assert 0 < len(filtered_units) < len(all_units)
    assert set(filtered_units.index) <= set(all_units.index)


def test_download_with_lfp_from_the_warehouse(capsys, project, project_warehouse, tmp_path):
    sid = PROJECT_SESSIONS[0]
    code, out, err = run(
        capsys, "download", str(sid), "--lfp", "--quiet", "--source", "warehouse",
        "--endpoint", host(project_warehouse), "--cache", str(tmp_path),
    )  # fmt: skip
    assert code == 0, err
    for original in (project / f"session_{sid}").glob("*.nwb"):
        copy = tmp_path / f"session_{sid}" / original.name
        assert copy.read_bytes() == original.read_bytes()
        assert str(copy) in out
    assert not list(tmp_path.rglob("*.part"))


def test_links_print_one_url_per_file(capsys, project, tmp_path):
    for table in project.glob("*.csv"):
        shutil.copy(table, tmp_path)
    code, out, _ = run(
        capsys, "links", "--source", "s3", "--endpoint", "http://127.0.0.1:1", "--cache", str(tmp_path)
    )
    assert code == 0
    assert out.split() == [
        f"http://127.0.0.1:1/allen-brain-observatory/visual-coding-neuropixels/ecephys-cache/session_{s}/session_{s}.nwb"
        for s in PROJECT_SESSIONS
    ]
    _, with_lfp, _ = run(
        capsys,
        "links",
        "--lfp",
        "--source",
        "s3",
        "--endpoint",
        "http://127.0.0.1:1",
        "--cache",
        str(tmp_path),
    )
    assert len(with_lfp.split()) == 3 * len(PROJECT_SESSIONS) - 1  # one probe has no LFP


def test_info_describes_the_file(capsys, project):
    sid = PROJECT_SESSIONS[0]
    code, out, _ = run(capsys, "info", str(project / f"session_{sid}" / f"session_{sid}.nwb"))
    assert code == 0
    assert f"session {sid}" in out
    assert "pass the default quality filters" in out
    assert "probeA" in out and "LFP file present" in out


def test_verify_finds_a_truncated_file(capsys, project, tmp_path):
    sid = PROJECT_SESSIONS[0]
    shutil.copytree(project / f"session_{sid}", tmp_path / f"session_{sid}")
    code, out, _ = run(capsys, "verify", "--cache", str(tmp_path))
    assert code == 0 and "all files are whole" in out
    target = tmp_path / f"session_{sid}" / f"session_{sid}.nwb"
    target.write_bytes(target.read_bytes()[:100_000])
    code, out, _ = run(capsys, "verify", "--cache", str(tmp_path))
    assert code == 1
    assert f"BAD {target}" in out and "fetches it again" in out


def test_errors_are_one_line_and_exit_1(capsys, project):
    code, out, err = run(capsys, "units", "--session", "123", "--source", "local", "--cache", str(project))
    assert code == 1
    assert err.startswith("ecephys units: error: session 123 is not in the project's session table")
    assert "Traceback" not in err and err.count("\n") == 1
    code, _, err = run(
        capsys, "units", "--session", "123", "--source", "local", "--cache", str(project), "--verbose"
    )
    assert code == 1 and "Traceback" in err


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as info:
        main(["sessions", "--source", "ftp"])
    assert info.value.code == 2


def test_the_module_runs_as_a_program(project):
    sid = PROJECT_SESSIONS[1]
    proc = subprocess.run(
        [sys.executable, "-m", "ecephys.cli", "info", str(project / f"session_{sid}" / f"session_{sid}.nwb")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"session {sid}" in proc.stdout
