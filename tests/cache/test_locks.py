"""The per-file lock: one download for several processes asking for the same file."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time

import pytest

from ecephys.cache.download import fetch, lock_path
from ecephys.cache.locks import FileLock
from ecephys.errors import LockTimeout
from ecephys.sources import HTTPSource
from ecephys.testing.servers import Fault
from tests.transport import fetch_in_child

KEY = "files/session.nwb"


def test_acquire_and_release(tmp_path):
    lock = FileLock(tmp_path / "a" / "x.lock")
    with lock:
        assert lock.held and not lock.waited
        assert (tmp_path / "a" / "x.lock").read_text().strip() == str(os.getpid())
    assert not lock.held
    with FileLock(tmp_path / "a" / "x.lock", timeout=0):
        pass


def test_a_held_lock_times_out_naming_the_holder(tmp_path):
    path = tmp_path / "x.lock"
    with FileLock(path), pytest.raises(LockTimeout, match=f"process {os.getpid()} has held") as caught:
        FileLock(path, timeout=0.2).acquire()
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.timeout == 0.2


def test_a_waiter_gets_the_lock_when_it_is_released(tmp_path):
    path = tmp_path / "x.lock"
    holder = FileLock(path).acquire()
    threading.Timer(0.2, holder.release).start()
    started = time.monotonic()
    with FileLock(path, timeout=5) as waiter:
        assert waiter.waited
    assert time.monotonic() - started >= 0.15


def test_locks_are_not_reentrant(tmp_path):
    lock = FileLock(tmp_path / "x.lock").acquire()
    with pytest.raises(RuntimeError, match="not re-entrant"):
        lock.acquire()
    lock.release()


def test_fetch_waits_for_the_lock_then_times_out(file_server, payload, tmp_path):
    file_server.add_file(KEY, payload)
    target = tmp_path / "s.nwb"
    with FileLock(lock_path(target)), pytest.raises(LockTimeout, match="s.nwb.lock"):
        fetch(HTTPSource(file_server.base_url), KEY, target, progress=False, lock_timeout=0.2)
    assert file_server.records == []


def test_two_processes_make_one_download(file_server, payload, tmp_path):
    file_server.add_file(KEY, payload)
    # Slow the first answer down so that the second process arrives while it is running.
    file_server.faults.push(Fault(stall=1.0, stall_after=100_000))
    target = tmp_path / "cache" / "session.nwb"
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        results = pool.starmap(fetch_in_child, [(file_server.base_url, KEY, str(target))] * 2)
    assert {r[0] for r in results} == {str(target)}
    assert len({r[1] for r in results}) == 2
    assert max(r[2] for r in results) < min(r[3] for r in results)  # the two fetches overlapped
    assert target.read_bytes() == payload.read_bytes()
    gets = file_server.requests(KEY, "GET")
    assert len(gets) == 1
    assert gets[0].sent == payload.stat().st_size
    assert len(file_server.requests(KEY, "HEAD")) == 1  # the waiter checked the file locally
