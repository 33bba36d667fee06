"""Add / remove / replay round trips and group commit, against every real store."""

from __future__ import annotations

import uuid

import gevent
import gevent.event
import pytest

from gearpy.errors import StoreError
from gearpy.server.store import QueueStore, StoredJob
from gearpy.server.stores import GroupCommitStore, open_store


def sid() -> str:
    return uuid.uuid4().hex


def add_all(store: QueueStore, jobs: list[StoredJob], timeout: float = 30.0) -> list[BaseException | None]:
    """Add every job (from the calling greenlet) and wait for all callbacks, in order."""
    results: list[object] = [Ellipsis] * len(jobs)
    order: list[int] = []
    done = gevent.event.Event()

    def callback(i: int):
        def on_durable(err: BaseException | None) -> None:
            results[i] = err
            order.append(i)
            if len(order) == len(jobs):
                done.set()

        return on_durable

    for i, job in enumerate(jobs):
        store.add(job, callback(i))
    assert done.wait(timeout), f"only {len(order)} of {len(jobs)} callbacks"
    assert order == sorted(order), "callbacks must come in submission order"
    return results  # type: ignore[return-value]


def opened(url: str, **options: object) -> GroupCommitStore:
    store = open_store(url, **options)
    assert isinstance(store, GroupCommitStore) and store.durable
    store.open()
    return store


def tricky_jobs() -> list[StoredJob]:
    """Everything gearmand's stores lose or mangle (gearman-protocol.md §6.4), plus the usual."""
    return [
        StoredJob(sid(), b"f", b"", b"empty unique 1", 1),
        StoredJob(sid(), b"f", b"", b"empty unique 2", 1),
        StoredJob(sid(), b"f", b"", b"empty unique 3", 1),
        StoredJob(sid(), b"f", b"same", b"repeated unique 1", 1),
        StoredJob(sid(), b"f", b"same", b"repeated unique 2", 1),
        StoredJob(sid(), b"f", b"", b"", 1),  # empty payload
        StoredJob(sid(), b"f", b"", b"", 1),  # and another one
        StoredJob(sid(), b"bin", b"u", bytes(range(256)) * 40 + b"\x00\x00", 2),
        StoredJob(sid(), b"epoch", b"e", b"later", 1, when=2_000_000_000),
        StoredJob(sid(), b"reduce", b"r", b"mapped", 0, reducer=b"the-reducer"),
        StoredJob(sid(), b"fn-with-\x00-nul", b"u-\x00-'; DROP TABLE x;--", b"\"quotes\" 'and' \\", 0),
    ]


def test_round_trip_keeps_every_job_distinct_and_in_order(service) -> None:
    store = opened(service.url)
    try:
        assert list(store.replay()) == []
        jobs = tricky_jobs()
        assert add_all(store, jobs) == [None] * len(jobs)
    finally:
        store.close()

    restarted = opened(service.url)
    try:
        replayed = list(restarted.replay())
        assert replayed == jobs  # every field, byte for byte, in insertion order
        for job in jobs[::2]:
            restarted.remove(job.store_id)
        assert restarted.flush(10)
    finally:
        restarted.close()

    again = opened(service.url)
    try:
        assert list(again.replay()) == jobs[1::2]
    finally:
        again.close()


def test_group_commit_batches_concurrent_adds(service) -> None:
    store = opened(service.url)
    try:
        jobs = [StoredJob(sid(), b"g", b"", str(i).encode(), 1) for i in range(500)]
        results: dict[int, BaseException | None] = {}
        done = gevent.event.Event()

        def submit(i: int) -> None:
            def on_durable(err: BaseException | None) -> None:
                results[i] = err
                if len(results) == len(jobs):
                    done.set()

            store.add(jobs[i], on_durable)

        commits_before = store.backend.commits
        gevent.joinall([gevent.spawn(submit, i) for i in range(len(jobs))])
        assert done.wait(30)
        assert set(results.values()) == {None}
        commits = store.backend.commits - commits_before
        assert 1 <= commits <= 25, f"500 concurrent adds took {commits} transactions"
        assert store.largest_batch >= 20
        assert sorted(j.payload for j in store.replay()) == sorted(j.payload for j in jobs)
    finally:
        store.close()


def test_writes_during_a_commit_form_the_next_batch(service) -> None:
    """Adds arriving while a commit runs are not lost or reordered; they make the next batch."""
    store = opened(service.url, max_batch=7)
    try:
        jobs = [StoredJob(sid(), b"o", b"", str(i).encode(), 1) for i in range(50)]
        assert add_all(store, jobs) == [None] * 50
        assert store.backend.commits >= 50 // 7
        assert [j.store_id for j in store.replay()] == [j.store_id for j in jobs]
    finally:
        store.close()


def test_remove_in_the_same_batch_as_add(service) -> None:
    store = opened(service.url)
    try:
        keep, drop = StoredJob(sid(), b"k", b"", b"keep", 1), StoredJob(sid(), b"k", b"", b"drop", 1)
        done = gevent.event.Event()
        store.add(keep, lambda err: None)
        store.add(drop, lambda err: done.set())
        store.remove(drop.store_id)
        assert done.wait(10) and store.flush(10)
        assert list(store.replay()) == [keep]
    finally:
        store.close()


def test_oversized_job_fails_alone_and_in_order(tmp_path) -> None:
    store = opened(f"sqlite://{tmp_path}/q.db")
    try:
        store.backend.max_job_bytes = 1000
        jobs = [
            StoredJob(sid(), b"f", b"", b"a", 1),
            StoredJob(sid(), b"f", b"", b"x" * 5000, 1),
            StoredJob(sid(), b"f", b"", b"b", 1),
        ]
        results = add_all(store, jobs)
        assert results[0] is None and results[2] is None
        assert isinstance(results[1], StoreError) and "5001 bytes exceeds" in str(results[1])
        assert [j.payload for j in store.replay()] == [b"a", b"b"]
    finally:
        store.close()


@pytest.mark.external
def test_mysql_reports_its_packet_limit(service_of) -> None:
    store = opened(service_of("mysql").url)
    try:
        limit = store.backend.max_job_bytes
        assert limit is not None and limit > 1000
        big = StoredJob(sid(), b"f", b"", b"\x00" * (limit + 1), 1)
        small = StoredJob(sid(), b"f", b"", b"ok", 1)
        results = add_all(store, [big, small])
        assert isinstance(results[0], StoreError) and results[1] is None
    finally:
        store.close()


def test_add_after_close_fails_cleanly(tmp_path) -> None:
    store = opened(f"sqlite://{tmp_path}/q.db")
    store.close()
    assert isinstance(add_all(store, [StoredJob(sid(), b"f", b"", b"", 1)])[0], StoreError)
    assert not store.healthy()


def test_close_commits_pending_writes(service) -> None:
    store = opened(service.url)
    job = StoredJob(sid(), b"c", b"", b"pending at close", 1)
    seen: list[BaseException | None] = []
    store.add(job, seen.append)
    store.close()
    assert seen == [None]
    again = opened(service.url)
    try:
        assert list(again.replay()) == [job]
    finally:
        again.close()
