"""The built-in demo runs offline, writes its session once and prints the units summary."""

from __future__ import annotations

import ecephys
from ecephys import demo


def test_demo_writes_once_and_prints_the_units_summary(tmp_path, capsys):
    assert demo.main(["--folder", str(tmp_path)]) == 0
    first = capsys.readouterr().out
    assert "writing a synthetic session" in first
    session_file = tmp_path / "session_999000001" / "session_999000001.nwb"
    assert session_file.exists()
    session = ecephys.open_session(session_file)
    assert f"{session.num_units} units pass the" in first
    assert "median_firing_rate_hz" in first
    for probe in session.probes["description"]:
        assert probe in first
    mtime = session_file.stat().st_mtime_ns
    assert demo.main(["--folder", str(tmp_path)]) == 0
    second = capsys.readouterr().out
    assert "writing a synthetic session" not in second
    assert session_file.stat().st_mtime_ns == mtime


def test_units_summary_counts_every_unit(tmp_path):
    demo.main(["--folder", str(tmp_path)])
    session = ecephys.open_session(tmp_path / "session_999000001" / "session_999000001.nwb")
    summary = demo.summarize_units(session)
    assert summary["units"].sum() == session.num_units
    assert set(summary.index.get_level_values("probe_description")) <= set(session.probes["description"])
