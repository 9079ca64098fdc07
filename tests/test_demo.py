"""The offline tour: makes its project once, serves it, walks the tutorial, writes the figures."""

from __future__ import annotations

import pytest

import ecephys
from ecephys import demo
from ecephys.cli import main as cli_main
from ecephys.testing.project import TUTORIAL_SESSIONS

FIGURES = {
    "raster_drifting_gratings.png",
    "spike_counts_one_flash.png",
    "mean_spike_counts_flashes.png",
    "mean_waveforms.png",
    "running_speed.png",
    "lfp.png",
    "csd.png",
}
PNG = b"\x89PNG\r\n\x1a\n"


def test_the_tour_prints_the_tutorial_steps_and_writes_the_figures(tutorial_project, tmp_path, capsys):
    output = tmp_path / "figures"
    assert demo.main(["--folder", str(tutorial_project), "--output", str(output)]) == 0
    out = capsys.readouterr().out
    assert "(made earlier)" in out and "writing 3 synthetic sessions" not in out
    assert "warehouse emulator: http://127.0.0.1:" in out
    assert "Total number of sessions: 3" in out
    sst = TUTORIAL_SESSIONS[0].session_id
    query = out.split("the tutorial's query", 1)[1].split("\n4. ", 1)[0]
    assert f"\n   {sst}  brain_observatory_1.1   M  Sst-IRES-Cre" in query
    assert all(str(s.session_id) not in query for s in TUTORIAL_SESSIONS[1:])
    for text in (
        "Total number of probes: ",
        "Total number of channels: ",
        "Total number of units: ",
        "downloaded ",
        "units have snr > 4",
        "drifting_gratings",
        "DataArray 'spike_counts'",
        "DataArray 'LFP'",
        "1 session file and 1 LFP file cached",
        "EcephysProjectCache.from_s3(",
        "ecephys download 715093703",
    ):
        assert text in out, text
    assert {p.name for p in output.iterdir()} == FIGURES
    for name in FIGURES:
        assert (output / name).read_bytes()[:8] == PNG
    assert f"{len(FIGURES)} figures in {output.absolute()}" in out


def test_the_project_is_made_once_from_nothing(tmp_path, capsys):
    folder = tmp_path / "cache" / "demo-project"
    assert demo.ensure_demo_project(folder) == folder
    assert "writing 3 synthetic sessions" in capsys.readouterr().out
    assert (folder / demo.MARKER).exists()
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".demo-project-")]
    session_file = (
        folder
        / f"session_{TUTORIAL_SESSIONS[0].session_id}"
        / f"session_{TUTORIAL_SESSIONS[0].session_id}.nwb"
    )
    mtime = session_file.stat().st_mtime_ns
    assert demo.ensure_demo_project(folder) == folder
    assert "(made earlier)" in capsys.readouterr().out
    assert session_file.stat().st_mtime_ns == mtime
    session = ecephys.EcephysProjectCache(folder).get_session_data(TUTORIAL_SESSIONS[0].session_id)
    assert session.structurewise_unit_counts["VISl"] > 0
    assert (session.sex, session.session_type) == ("M", "brain_observatory_1.1")


def test_the_default_folder_is_in_the_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("ECEPHYS_CACHE_DIR", str(tmp_path))
    assert demo.default_folder() == tmp_path / "demo-project"


def test_a_folder_that_is_not_a_demo_project_is_left_alone(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("mine")
    assert demo.main(["--folder", str(tmp_path), "--output", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"ecephys demo: error: {tmp_path} is not empty and holds no demo-project.json")
    assert [p.name for p in tmp_path.iterdir() if p.name != "out"] == ["notes.txt"]


def test_the_ecephys_command_runs_the_tour(tutorial_project, tmp_path, capsys):
    output = tmp_path / "out"
    assert cli_main(["demo", "--folder", str(tutorial_project), "--output", str(output)]) == 0
    assert "Total number of sessions: 3" in capsys.readouterr().out
    assert {p.name for p in output.iterdir()} == FIGURES


@pytest.mark.parametrize("argv", [["--help"], ["--bogus"]])
def test_usage(argv, capsys):
    with pytest.raises(SystemExit) as exit_info:
        demo.main(argv)
    assert exit_info.value.code == (0 if argv == ["--help"] else 2)
