"""How sessions and project caches show themselves: a short repr, a small HTML table for Jupyter."""

from __future__ import annotations

import re
import shutil

import ecephys
from ecephys import EcephysProjectCache
from tests.transport import PROJECT_SESSIONS


def html_rows(html: str) -> dict[str, str]:
    return dict(re.findall(r"<th[^>]*>(.*?)</th><td[^>]*>(.*?)</td>", html))


def test_session_repr_is_one_short_line(project):
    session = EcephysProjectCache(project).get_session_data(PROJECT_SESSIONS[0])
    text = repr(session)
    assert text == f"<EcephysSession {PROJECT_SESSIONS[0]} ({session._nwb.name})>"
    assert "\n" not in text


def test_session_html_names_id_type_units_probes_duration_and_local_lfp(project):
    sid = PROJECT_SESSIONS[1]
    session = EcephysProjectCache(project).get_session_data(sid)
    html = session._repr_html_()
    assert html.startswith("<div><strong>EcephysSession</strong><table>")
    rows = html_rows(html)
    assert rows["session id"] == str(sid)
    assert rows["session type"] == session.session_type == "functional_connectivity"
    n_file = len(session._nwb.unit_ids)
    assert rows["units"] == f"{session.num_units} pass the filters, {n_file} in the file"
    assert session.num_units < n_file
    assert rows["probes"] == "2 (probeA, probeB)"
    assert rows["duration"] == "30.0 s"
    assert rows["LFP files on disk"] == "2 of 2: probeA, probeB"


def test_session_html_without_lfp_files(project, tmp_path):
    sid = PROJECT_SESSIONS[0]
    lonely = tmp_path / f"session_{sid}.nwb"
    shutil.copy(project / f"session_{sid}" / f"session_{sid}.nwb", lonely)
    rows = html_rows(ecephys.open_session(lonely)._repr_html_())
    assert rows["LFP files on disk"] == "none of 2 (get_lfp reads or downloads them)"
    assert rows["file"] == str(lonely)


def test_session_html_for_a_probe_whose_lfp_file_is_missing(project):
    session = EcephysProjectCache(project).get_session_data(PROJECT_SESSIONS[2])
    assert html_rows(session._repr_html_())["LFP files on disk"] == "1 of 2: probeA"


def test_cache_repr_counts_without_fetching(project_warehouse, tmp_path):
    host = project_warehouse.base_url.split("://", 1)[1]
    cache = EcephysProjectCache.from_warehouse(scheme="http", host=host, manifest=tmp_path, progress=False)
    requests = len(project_warehouse.requests())
    assert repr(cache) == (
        f"<EcephysProjectCache {tmp_path} (warehouse http://{host}): session table not fetched yet, "
        "0 session files and 0 LFP files cached>"
    )
    rows = html_rows(cache._repr_html_())
    assert rows == {
        "folder": str(tmp_path),
        "source": f"warehouse http://{host}",
        "sessions in the table": "(table not fetched yet)",
        "session files cached": "0",
        "LFP files cached": "0",
    }
    assert len(project_warehouse.requests()) == requests  # a repr never goes to the network

    cache.get_session_data(PROJECT_SESSIONS[0]).get_lfp(cache.get_probes().index[0])
    assert repr(cache).endswith("3 sessions, 1 session file and 1 LFP file cached>")
    assert html_rows(cache._repr_html_())["sessions in the table"] == "3"


def test_cache_repr_of_a_folder_and_of_the_bucket(project, tmp_path):
    assert repr(EcephysProjectCache(project)) == (
        f"<EcephysProjectCache {project} (folder only): 3 sessions, 3 session files and 5 LFP files cached>"
    )
    s3 = EcephysProjectCache.from_s3(tmp_path)
    assert "(S3Source https://allen-brain-observatory.s3.us-west-2.amazonaws.com/" in repr(s3)


def test_html_escapes_what_it_shows(tmp_path):
    folder = tmp_path / "<b>"
    folder.mkdir()
    html = EcephysProjectCache(folder)._repr_html_()
    assert "&lt;b&gt;" in html and "<b>" not in html
