"""fetch: .part beside the target, resume, verify, atomic rename — against a misbehaving server."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import subprocess
import sys
import time
from collections import namedtuple

import pytest

from ecephys.cache import download
from ecephys.cache.download import FetchPlan, fetch, lock_path, part_path, plan_fetch
from ecephys.errors import (
    InsufficientDiskSpace,
    IntegrityError,
    OfflineError,
    RemoteNotFound,
    TransientSourceError,
)
from ecephys.sources import HTTPSource, ObjectInfo, RetryPolicy
from ecephys.testing.servers import Fault

KEY = "files/session_999000001.nwb"
RESET_SHARE = 0.2  # share of soak drops that are TCP resets (the rest are clean closes)


@pytest.fixture
def served(file_server, payload):
    """The payload NWB file on the server, and a source for it (0.5 s read timeout)."""
    file_server.add_file(KEY, payload)
    with HTTPSource(file_server.base_url, timeout=0.5) as source:
        yield file_server, source, payload.read_bytes()


def leftovers(target):
    """Files beside the target other than the target and its lock."""
    return sorted(
        p.name for p in target.parent.iterdir() if p.name not in (target.name, lock_path(target).name)
    )


def body_bytes(server, path=KEY):
    """Body bytes the server sent for ``path`` in 2xx answers."""
    return sum(r.sent for r in server.requests(path, "GET") if 200 <= r.status < 300)


# ------------------------------------------------------------------ the decision, without a network

INFO = ObjectInfo(size=1000, etag='"v1"', url="http://h/f")


@pytest.mark.parametrize(
    ("setup", "remote", "expected"),
    [
        ({}, INFO, FetchPlan("download", "f.bin is not in the cache")),
        ({"part": 400}, INFO, ("resume", 400)),
        ({"part": 400, "meta": '"v1"'}, INFO, ("resume", 400)),
        ({"part": 400, "meta": '"v0"'}, INFO, ("download", 0)),
        ({"part": 1500}, INFO, ("download", 0)),
        ({"part": 0}, INFO, ("download", 0)),
        ({"target": 1000}, INFO, ("use", 0)),
        ({"target": 999}, INFO, ("refetch", 0)),
        ({"target": 1001}, INFO, ("refetch", 0)),
        ({"target": 1000, "part": 10}, INFO, ("use", 0)),
        ({"target": 7}, None, ("use", 0)),  # nothing to compare with: trusted
    ],
)
def test_plan_fetch(tmp_path, setup, remote, expected):
    target = tmp_path / "f.bin"
    if "target" in setup:
        target.write_bytes(b"x" * setup["target"])
    if "part" in setup:
        part_path(target).write_bytes(b"x" * setup["part"])
    if "meta" in setup:
        target.with_name("f.bin.part.json").write_text(json.dumps({"etag": setup["meta"]}))
    plan = plan_fetch(target, remote)
    if isinstance(expected, FetchPlan):
        assert plan == expected
    else:
        assert (plan.action, plan.offset) == expected


def test_plan_fetch_explains_itself(tmp_path, payload):
    target = tmp_path / "session.nwb"
    target.write_bytes(payload.read_bytes()[:1000])  # what the AllenSDK leaves after a cut
    plan = plan_fetch(target)
    assert plan.action == "refetch"
    assert "holds 1,000 of" in plan.reason and "truncated" in plan.reason
    part_path(target).write_bytes(b"x" * 10)
    target.unlink()
    resume = plan_fetch(target, ObjectInfo(size=2000, etag=None, url="u"))
    assert resume == FetchPlan("resume", "resuming session.nwb from byte 10 of 2.0 kB", 10)
    changed = plan_fetch(target, ObjectInfo(size=2000, etag='"b"', url="u"), expected_etag='"a"')
    assert changed.action == "download" and '"a" → "b"' in changed.reason


# ------------------------------------------------------------------ the happy path


def test_fetch_downloads_verifies_and_renames(served, tmp_path):
    server, source, data = served
    target = tmp_path / "cache" / "session_1" / "session_1.nwb"
    assert fetch(source, KEY, target, progress=False) == target
    assert target.read_bytes() == data
    assert leftovers(target) == []
    assert lock_path(target).exists()  # locks stay; the system releases them
    assert body_bytes(server) == len(data)


def test_a_whole_file_is_used_without_the_network(served, tmp_path):
    server, source, data = served
    target = tmp_path / "s.nwb"
    target.write_bytes(data)
    assert fetch(source, KEY, target, progress=False) == target
    assert server.records == []


def test_a_non_hdf5_file_is_checked_against_the_remote_size(file_server, tmp_path):
    file_server.add_file("units.csv", b"id\n1\n2\n")
    target = tmp_path / "units.csv"
    target.write_bytes(b"id\n1\n")  # cut short by an older tool
    fetch(HTTPSource(file_server.base_url), "units.csv", target, progress=False)
    assert target.read_bytes() == b"id\n1\n2\n"
    fetch(HTTPSource(file_server.base_url), "units.csv", target, progress=False)
    assert [r.method for r in file_server.records] == ["HEAD", "GET", "HEAD"]


def test_a_truncated_file_left_by_the_allensdk_is_fetched_again(served, tmp_path, caplog):
    server, source, data = served
    target = tmp_path / "session.nwb"
    target.write_bytes(data[: len(data) // 3])
    with caplog.at_level("WARNING", logger="ecephys.cache.download"):
        fetch(source, KEY, target, progress=False)
    assert target.read_bytes() == data
    assert "truncated" in caplog.text and "downloaded again" in caplog.text


def test_resume_asks_only_for_the_missing_bytes(served, tmp_path):
    server, source, data = served
    target = tmp_path / "s.nwb"
    half = len(data) // 2
    part_path(target).write_bytes(data[:half])
    fetch(source, KEY, target, progress=False)
    assert target.read_bytes() == data
    get = server.requests(KEY, "GET")
    assert [r.range for r in get] == [f"bytes={half}-"]
    assert get[0].if_range == source.info(KEY).etag
    assert body_bytes(server) == len(data) - half


def test_a_part_from_an_older_version_is_discarded(served, tmp_path):
    server, source, data = served
    target = tmp_path / "s.nwb"
    part_path(target).write_bytes(b"\0" * 1000)
    target.with_name("s.nwb.part.json").write_text(json.dumps({"etag": '"older"'}))
    fetch(source, KEY, target, progress=False)
    assert target.read_bytes() == data
    assert [r.range for r in server.requests(KEY, "GET")] == [None]


def test_a_corrupt_part_is_redone_from_the_start(served, tmp_path):
    server, source, data = served
    target = tmp_path / "s.nwb"
    part_path(target).write_bytes(b"garbage!" * 1000)  # no HDF5 signature once completed
    fetch(source, KEY, target, progress=False)
    assert target.read_bytes() == data
    assert [r.range for r in server.requests(KEY, "GET")] == ["bytes=8000-", None]


# ------------------------------------------------------------------ the fault matrix

FaultCase = namedtuple("FaultCase", "faults always gets")


@pytest.mark.parametrize(
    "case",
    [
        FaultCase([Fault(drop_after=300_000)], None, 2),
        FaultCase([Fault(drop_after=300_000, reset=True)], None, 2),
        FaultCase([Fault(drop_after=0)] * 3, None, 4),
        FaultCase([Fault(status=503)] * 2, None, 3),
        FaultCase([Fault(status=502, methods=("HEAD",))], None, 1),
        FaultCase([Fault(stall=2.0, stall_after=500_000)], None, 2),
        FaultCase([Fault(length_delta=+5000)], None, 1),  # all bytes came; the cut is harmless
        FaultCase([Fault(length_delta=-5000)], None, 2),
        FaultCase([Fault(drop_after=1_000_000), Fault(ignore_range=True)], None, 2),
        FaultCase([Fault(drop_after=700_000), Fault(drop_after=700_000)], Fault(ignore_range=True), 3),
    ],
    ids=[
        "drop",
        "reset",
        "drop-at-0-thrice",
        "503-twice",
        "502-on-head",
        "stall",
        "long-content-length",
        "short-content-length",
        "ignore-range-after-drop",
        "never-range",
    ],
)
def test_fault_matrix(served, tmp_path, policy, sleeps, case):
    server, source, data = served
    server.faults.push(*case.faults)
    server.faults.always = case.always
    target = tmp_path / "s.nwb"
    fetch(source, KEY, target, progress=False, retries=policy)
    assert target.read_bytes() == data
    assert leftovers(target) == []
    gets = len(server.requests(KEY, "GET"))
    assert gets >= case.gets
    assert len(sleeps) == gets - 1 + (len(server.requests(KEY, "HEAD")) - 1)
    assert all(0 <= s <= policy.cap for s in sleeps)


def test_a_503_page_is_never_saved(served, tmp_path, policy):
    server, source, _ = served
    server.faults.always = Fault(status=503)
    target = tmp_path / "s.nwb"
    with pytest.raises(TransientSourceError, match="503 Service Unavailable.*gave up after 7 attempts"):
        fetch(source, KEY, target, progress=False, retries=policy)
    assert not target.exists()
    assert not part_path(target).exists() or part_path(target).stat().st_size == 0


def test_an_html_page_served_as_the_file_is_refused(file_server, tmp_path):
    page = b"<!DOCTYPE html><html><body>Please log in</body></html>"
    file_server.add_file(KEY, page, content_type="text/html")
    target = tmp_path / "s.nwb"
    with pytest.raises(IntegrityError, match="no HDF5 signature .*HTML"):
        fetch(HTTPSource(file_server.base_url), KEY, target, progress=False)
    assert not target.exists() and leftovers(target) == []


def test_a_missing_file(served, tmp_path):
    _, source, _ = served
    with pytest.raises(RemoteNotFound, match="files/nope.nwb"):
        fetch(source, "files/nope.nwb", tmp_path / "nope.nwb", progress=False)
    assert not (tmp_path / "nope.nwb").exists()


def test_an_unexpected_size_is_refused_before_downloading(served, tmp_path):
    server, source, data = served
    with pytest.raises(IntegrityError, match=f"says {len(data):,} bytes but 5 were expected"):
        fetch(source, KEY, tmp_path / "s.nwb", expected_size=5, progress=False)
    assert server.requests(KEY, "GET") == []


def test_an_unexpected_etag_is_refused(served, tmp_path):
    _, source, _ = served
    with pytest.raises(IntegrityError, match="the remote file changed"):
        fetch(source, KEY, tmp_path / "s.nwb", expected_etag='"other"', progress=False)


def test_progress_made_resets_the_retry_budget(served, tmp_path, sleeps):
    server, source, data = served
    server.faults.hook = lambda method, path, start: Fault(drop_after=200_000)
    policy = RetryPolicy(retries=1, sleep=sleeps.append)
    fetch(source, KEY, tmp_path / "s.nwb", progress=False, retries=policy)
    assert (tmp_path / "s.nwb").read_bytes() == data
    assert len(server.requests(KEY, "GET")) == -(-len(data) // 200_000)


def test_backoff_is_exponential_with_full_jitter():
    policy = RetryPolicy(retries=10, base=0.5, cap=4.0, random=lambda: 1.0)
    assert [policy.delay(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    half = RetryPolicy(base=0.5, cap=4.0, random=lambda: 0.5)
    assert half.delay(3) == 1.0
    with pytest.raises(ValueError, match="retries=-1"):
        RetryPolicy(retries=-1)


# ------------------------------------------------------------------ disk, offline, progress


def test_not_enough_disk_space(served, tmp_path, monkeypatch):
    _, source, data = served
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    target = tmp_path / "s.nwb"
    with pytest.raises(
        InsufficientDiskSpace, match=f"needs 2.6 MB more .*{tmp_path}.* only 1.0 kB is free"
    ) as caught:
        fetch(source, KEY, target, progress=False)
    assert isinstance(caught.value, OSError)
    assert (caught.value.needed, caught.value.free) == (len(data), 1000)
    assert not target.exists()


def test_offline_refuses_the_network(served, tmp_path, monkeypatch):
    server, source, data = served
    monkeypatch.setenv("ECEPHYS_OFFLINE", "1")
    target = tmp_path / "s.nwb"
    with pytest.raises(OfflineError, match="not in the cache, and ECEPHYS_OFFLINE is set"):
        fetch(source, KEY, target, progress=False)
    target.write_bytes(data[:100])
    with pytest.raises(OfflineError, match="is incomplete"):
        fetch(source, KEY, target, progress=False)
    target.write_bytes(data)
    assert fetch(source, KEY, target, progress=False) == target
    table = tmp_path / "units.csv"
    table.write_text("id\n1\n")  # no size known: used as it is, offline
    assert fetch(source, "units.csv", table, progress=False) == table
    with pytest.raises(OfflineError, match="units.csv: is incomplete .*holds 5 bytes, 5 more than"):
        fetch(source, "units.csv", table, expected_size=0, progress=False)
    assert server.records == []


def test_progress_bar_names_the_file(served, tmp_path, capsys):
    _, source, _ = served
    fetch(source, KEY, tmp_path / "named.nwb", progress=True)
    assert "named.nwb" in capsys.readouterr().err


def test_no_progress_bar_when_not_a_terminal(served, tmp_path, capsys):
    _, source, _ = served
    fetch(source, KEY, tmp_path / "quiet.nwb")
    assert capsys.readouterr().err == ""


# ------------------------------------------------------------------ the soak test


# Run in another process during the soak: stat the current target path in a tight loop and
# report any size other than the whole file's.
WATCHER = """
import json, os, sys
pointer, stop, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
checks, partial = 0, []
while not os.path.exists(stop):
    with open(pointer) as fh:
        path = fh.read()
    try:
        observed = os.stat(path).st_size if path else size
    except FileNotFoundError:
        continue
    checks += 1
    if observed != size:
        partial.append([path, observed])
print(json.dumps({"checks": checks, "partial": partial[:10]}))
"""


def test_soak_200_transfers_with_random_drops(served, tmp_path, capsys):
    """200 fetches, each cut at random offsets; no partial file is ever seen at a cache path."""
    server, source, data = served
    size, digest = len(data), hashlib.sha256(data).digest()
    rng = random.Random(20240501)
    drops = []

    def hook(method, path, start):
        if method != "GET" or rng.random() > 0.6:
            return None
        cut = rng.randrange(1, size - start) if size - start > 1 else 1
        drops.append(cut)
        return Fault(drop_after=cut, reset=rng.random() < RESET_SHARE)

    server.faults.hook = hook
    pointer, stop_file = tmp_path / "current.txt", tmp_path / "stop"
    pointer.write_text("")
    watcher = subprocess.Popen(
        [sys.executable, "-c", WATCHER, str(pointer), str(stop_file), str(size)],
        stdout=subprocess.PIPE,
        text=True,
    )
    policy = RetryPolicy(retries=20, sleep=lambda s: None)
    started = time.perf_counter()
    try:
        for i in range(200):
            target = tmp_path / f"session_{i}" / "session.nwb"
            pointer.write_text(str(target))
            fetch(source, KEY, target, progress=False, retries=policy)
            assert hashlib.sha256(target.read_bytes()).digest() == digest
            assert leftovers(target) == []
    finally:
        stop_file.touch()
        report = json.loads(watcher.communicate(timeout=30)[0])
    elapsed = time.perf_counter() - started
    fetched = body_bytes(server)
    ratio = fetched / (200 * size)
    with capsys.disabled():
        print(
            f"\nsoak: 200 transfers of {size:,} B, {len(drops)} drops, "
            f"{len(server.requests(KEY, 'GET'))} GETs, {fetched:,} B served = {ratio:.4f} x, "
            f"{elapsed:.1f} s, "
            f"another process looked at the target path {report['checks']:,} times"
        )
    assert report["partial"] == []
    assert len(drops) >= 200
    assert ratio <= 1.1


def test_module_exports():
    assert set(download.__all__) >= {"fetch", "plan_fetch", "FetchPlan", "is_complete"}
