"""WarehouseClient over the warehouse emulator: tables round-trip to the folder's CSV files."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from ecephys.cache.download import fetch
from ecephys.errors import RemoteNotFound, SourceError, TransientSourceError
from ecephys.sources import RetryPolicy, WarehouseClient
from ecephys.sources.warehouse import TABLE_COLUMNS, flatten_session, rma_contains
from ecephys.testing.servers import Fault, FileServer, Reply
from ecephys.testing.warehouse import WarehouseServer, parse_rma
from tests.transport import REAL_CACHE, TINY, copy_tree


def client_for(server, **kwargs) -> WarehouseClient:
    """A client pointed at an emulator, with a fast fake-sleep retry policy."""
    kwargs.setdefault("retry", RetryPolicy(retries=3, sleep=lambda s: None))
    return WarehouseClient("http", server.host, timeout=5, **kwargs)


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("table", ["sessions", "probes"])
def test_real_tables_round_trip_exactly(real_warehouse, table):
    got = getattr(client_for(real_warehouse), table)()
    pd.testing.assert_frame_equal(got, pd.read_csv(REAL_CACHE / f"{table}.csv"))


def test_real_probe_quirks_survive(real_warehouse):
    probes = client_for(real_warehouse).probes()
    assert len(probes) == 332
    assert probes["lfp_temporal_subsampling_factor"].isna().sum() == 5
    assert (probes["sampling_rate"] == 0.0).sum() == 1
    assert (~probes["has_lfp_data"]).sum() == 7
    assert (probes["phase"] == "PXI").sum() == 18
    assert probes["has_lfp_data"].dtype == bool
    assert probes["lfp_temporal_subsampling_factor"].dtype == np.float64


def test_real_sessions_have_the_csv_columns_and_types(real_warehouse):
    sessions = client_for(real_warehouse).sessions()
    assert list(sessions.columns) == list(TABLE_COLUMNS["sessions"])
    assert sessions["session_type"].value_counts().to_dict() == {
        "brain_observatory_1.1": 32,
        "functional_connectivity": 26,
    }
    assert (sessions["genotype"] == "wt/wt").sum() == 30


@pytest.mark.parametrize("table", ["probes", "channels", "units"])
def test_tiny_tables_round_trip_exactly(tiny_warehouse, table):
    got = getattr(client_for(tiny_warehouse), table)()
    pd.testing.assert_frame_equal(got, pd.read_csv(TINY / f"{table}.csv"))


def test_tiny_sessions_round_trip_up_to_the_warehouse_columns(tiny_warehouse):
    # This sessions.csv is not warehouse-made: it has get_session_table's counts but no
    # has_nwb. The warehouse always tells has_nwb, and the AllenSDK appends the donor columns
    # after the others; the values and dtypes all survive.
    want = pd.read_csv(TINY / "sessions.csv")
    got = client_for(tiny_warehouse).sessions()
    assert got["has_nwb"].tolist() == [True]
    pd.testing.assert_frame_equal(got[want.columns], want)


def test_paging_follows_total_rows(real_warehouse):
    real_warehouse.reset_stats()
    got = client_for(real_warehouse, page_size=7).probes()
    pd.testing.assert_frame_equal(got, pd.read_csv(REAL_CACHE / "probes.csv"))
    queries = real_warehouse.requests("/api/v2/data/query.json")
    assert len(queries) == 48  # ceil(332 / 7)


# ------------------------------------------------------------------ filters


def test_filters(real_warehouse, tiny_warehouse):
    real, tiny = client_for(real_warehouse), client_for(tiny_warehouse)
    assert real.sessions(session_ids=[715093703, 719161530])["id"].tolist() == [715093703, 719161530]
    assert len(real.sessions(session_types=["functional_connectivity"])) == 26
    assert set(real.probes(session_ids=[839557629])["ecephys_session_id"]) == {839557629}
    assert tiny.channels(probe_ids=[999001018])["ecephys_probe_id"].eq(999001018).all()
    units = pd.read_csv(TINY / "units.csv")
    channels = pd.read_csv(TINY / "channels.csv")
    on_a = units["ecephys_channel_id"].isin(channels.loc[channels["ecephys_probe_id"] == 999001018, "id"])
    assert tiny.units(probe_ids=[999001018])["id"].tolist() == units.loc[on_a, "id"].tolist()
    assert len(tiny.units(session_ids=[999000001])) == len(units)
    assert tiny.units(unit_ids=units["id"][:3])["id"].tolist() == units["id"][:3].tolist()


def test_an_empty_answer_is_a_typed_empty_frame(real_warehouse):
    sessions = client_for(real_warehouse).sessions(session_ids=[1])
    assert sessions.empty
    assert list(sessions.columns) == list(TABLE_COLUMNS["sessions"])
    assert sessions["id"].dtype == np.int64 and sessions["has_nwb"].dtype == bool


def test_rma_contains():
    assert rma_contains("id", None) == ""
    assert rma_contains("id", [1, np.int64(2)]) == "[id$in1,2]"
    assert rma_contains("stimulus_name", ["a b"], quoted=True) == "[stimulus_name$in'a b']"
    with pytest.raises(ValueError, match="at least one value"):
        rma_contains("id", [])


# ------------------------------------------------------------------ files


def test_session_and_lfp_files_download(project_warehouse, project, tmp_path):
    client = client_for(project_warehouse)
    sid, pid = 991000001, 991002018
    session_url = client.session_file_url(sid)
    lfp_url = client.lfp_file_url(pid)
    assert "/api/v2/well_known_file_download/" in session_url
    got = fetch(client.http, session_url, tmp_path / f"session_{sid}.nwb", progress=False)
    assert got.read_bytes() == (project / f"session_{sid}" / f"session_{sid}.nwb").read_bytes()
    lfp = fetch(client.http, lfp_url, tmp_path / f"probe_{pid}_lfp.nwb", progress=False)
    assert lfp.read_bytes() == (project / f"session_{sid}" / f"probe_{pid}_lfp.nwb").read_bytes()


@pytest.mark.parametrize("probe_id", [992002018, 123])
def test_a_probe_without_lfp_says_so(project_warehouse, probe_id):
    with pytest.raises(RemoteNotFound, match=f"probe {probe_id}: .*no LFP file.*issue 2260"):
        client_for(project_warehouse).lfp_file_url(probe_id)


def test_real_probes_without_lfp(real_warehouse):
    client = client_for(real_warehouse)
    with pytest.raises(RemoteNotFound, match="has_lfp_data"):
        client.lfp_file_url(773463023)
    assert client.lfp_file_url(729445648).startswith(real_warehouse.base_url)


def test_a_session_without_a_file(project_warehouse):
    with pytest.raises(RemoteNotFound, match="session 5: the warehouse lists no EcephysNwb file"):
        client_for(project_warehouse).session_file_url(5)


def test_project_tables(project_warehouse, project):
    client = client_for(project_warehouse)
    pd.testing.assert_frame_equal(client.sessions(), pd.read_csv(project / "sessions.csv"))
    pd.testing.assert_frame_equal(client.probes(), pd.read_csv(project / "probes.csv"))


# ------------------------------------------------------------------ analysis metrics


@pytest.fixture
def metrics_warehouse(tmp_path):
    """The tiny fixture plus a type-wise analysis-metrics file."""
    folder = copy_tree(TINY, tmp_path / "tiny")
    units = pd.read_csv(folder / "units.csv")
    rng = np.random.default_rng(0)
    metrics = pd.DataFrame(
        {
            "ecephys_unit_id": units["id"],
            "on_screen_rf": rng.random(len(units)) < 0.5,
            "p_value_rf": rng.random(len(units)),
            "pref_ori_dg": rng.choice([0.0, 45.0, 90.0, np.nan], len(units)),
            "firing_rate_dg": rng.random(len(units)) * 10,
            "area_rf": [str([1, 2])] * len(units),
        }
    )
    metrics.to_csv(folder / "brain_observatory_1.1_analysis_metrics.csv", index=False)
    with WarehouseServer(folder) as server:
        yield server, folder


def test_analysis_metrics_round_trip(metrics_warehouse):
    server, folder = metrics_warehouse
    client = client_for(server)
    want = pd.read_csv(folder / "brain_observatory_1.1_analysis_metrics.csv")
    pd.testing.assert_frame_equal(client.analysis_metrics(session_type="brain_observatory_1.1"), want)
    pd.testing.assert_frame_equal(client.analysis_metrics(session_ids=[999000001]), want)
    assert client.analysis_metrics(session_type="functional_connectivity").empty
    assert client.analysis_metrics(session_ids=[1]).empty


def test_the_warehouse_serves_rf_columns_swapped(metrics_warehouse):
    server, _ = metrics_warehouse
    status, envelope = server.emulator.answer("criteria=model::EcephysUnitMetricBundle")
    data = json.loads(envelope["msg"][0]["data"])
    assert isinstance(data["on_screen_rf"], float) and isinstance(data["p_value_rf"], bool)


# ------------------------------------------------------------------ failures


def test_a_503_page_is_retried(real_warehouse, sleeps):
    real_warehouse.faults.fail_first(2)
    client = client_for(real_warehouse, retry=RetryPolicy(retries=3, sleep=sleeps.append))
    assert len(client.sessions()) == 58
    assert len(sleeps) == 2


def test_retries_run_out(real_warehouse):
    real_warehouse.faults.fail_first(4)
    with pytest.raises(TransientSourceError, match="gave up after 4 attempts"):
        client_for(real_warehouse).sessions()
    real_warehouse.faults.clear()


def test_a_dropped_answer_is_retried(real_warehouse):
    real_warehouse.faults.push(Fault(drop_after=100, path="/api/v2/data/query.json"))
    assert len(client_for(real_warehouse).probes()) == 332


def test_a_refused_query_names_the_message(tiny_warehouse):
    with pytest.raises(SourceError, match="refused the query: .*does not know the model EcephysNothing"):
        client_for(tiny_warehouse).query("criteria=model::EcephysNothing")


def test_a_missing_table(real_warehouse):
    with pytest.raises(SourceError, match="no units.csv"):
        client_for(real_warehouse).units()


@pytest.mark.parametrize(
    ("envelope", "match"),
    [
        (
            {"success": True, "total_rows": 10, "num_rows": 0, "msg": []},
            "said 10 rows but sent an empty page",
        ),
        ({"oops": 1}, "expected the warehouse's JSON envelope"),
        ({"success": True, "total_rows": "x", "msg": "?"}, "expected a list of rows"),
    ],
    ids=["empty-page", "no-envelope", "bad-types"],
)
def test_a_broken_envelope_fails_instead_of_hanging(envelope, match):
    # AllenSDK issue 2751: a paging loop that never ends. Here it stops with a message.
    with FileServer() as server:
        server.add_route(
            "/api/v2/data/query.json", lambda path, query: Reply(200, json.dumps(envelope).encode())
        )
        with pytest.raises(SourceError, match=match):
            client_for(server).query("criteria=model::EcephysSession")


# ------------------------------------------------------------------ the emulator's RMA


def test_parse_rma_reads_the_allensdk_queries():
    units = parse_rma(
        "criteria=model::EcephysUnit,rma::criteria[id$in1,2],"
        "rma::criteria,ecephys_channel(ecephys_probe(ecephys_session[id$in7])),"
        "rma::options[start_row$eq0][num_rows$eq5000][order$eq'id']"
    )
    assert units.model == "EcephysUnit"
    assert [(f.path, f.attribute, f.values) for f in units.filters] == [
        ((), "id", ("1", "2")),
        (("ecephys_channel", "ecephys_probe", "ecephys_session"), "id", ("7",)),
    ]
    assert units.options == {"start_row": "0", "num_rows": "5000", "order": "id"}
    sessions = parse_rma(
        "criteria=model::EcephysSession[stimulus_name$in'brain_observatory_1.1'][fail_eye_tracking$eqfalse],"
        "rma::include,specimen(donor(age)),well_known_files(well_known_file_type)"
    )
    assert [(f.attribute, f.op, f.values) for f in sessions.filters] == [
        ("stimulus_name", "in", ("brain_observatory_1.1",)),
        ("fail_eye_tracking", "eq", ("false",)),
    ]
    assert sessions.includes == ["specimen(donor(age))", "well_known_files(well_known_file_type)"]


def test_the_emulator_accepts_the_q_form(real_warehouse):
    status, envelope = real_warehouse.emulator.answer("q=model::EcephysProbe,rma::options[num_rows$eq3]")
    assert envelope["success"] and envelope["num_rows"] == 3 and envelope["total_rows"] == 332
    assert "use_lfp_data" in envelope["msg"][0]


def test_the_default_page_is_50_rows(real_warehouse):
    _, envelope = real_warehouse.emulator.answer("criteria=model::EcephysProbe")
    assert envelope["num_rows"] == 50 and envelope["total_rows"] == 332


@pytest.mark.parametrize(
    ("genotype", "expected"),
    [(None, "wt"), ("Sst-IRES-Cre/wt", "Sst-IRES-Cre/wt")],
)
def test_flatten_session(genotype, expected):
    row = {
        "date_of_acquisition": "d",
        "fail_eye_tracking": False,
        "id": 7,
        "specimen": {"donor": {"age": {"days": 100.0}, "sex": "F", "full_genotype": genotype}},
        "stimulus_name": "functional_connectivity",
        "well_known_files": [{"well_known_file_type": {"name": "EcephysNwb"}}],
    }
    assert flatten_session(row) == {
        "id": 7,
        "date_of_acquisition": "d",
        "session_type": "functional_connectivity",
        "age_in_days": 100.0,
        "sex": "F",
        "genotype": expected,
        "has_nwb": True,
    }
