"""The admin text protocol client against both servers."""

from __future__ import annotations

import pytest

from gearpy.client import Admin, Client
from gearpy.errors import GearpyConnectionError, ServerError
from gearpy.testing import free_port


def test_admin_listings(gearman_server, gearman_worker):
    gearman_worker(gearman_server, "upper", "tr", "a-z", "A-Z")
    with Client([gearman_server.address]) as client:
        handle = client.submit("queued", "x", background=True, unique="uq-1").handle
    with Admin(gearman_server.address) as admin:
        status = {f.function: f for f in admin.status()}
        assert (status["upper"].workers, status["queued"].total, status["queued"].running) == (1, 1, 0)
        prio = {p.function: p for p in admin.prioritystatus()}
        assert prio["queued"].normal == 1
        workers = admin.workers()
        assert any(w.functions == ("upper",) and w.ip == "127.0.0.1" for w in workers)
        jobs = {j.handle: j for j in admin.show_jobs()}
        assert handle in jobs and jobs[handle].retries == 0
        assert "uq-1" in admin.show_unique_jobs()
        assert admin.version()
        assert admin.getpid() > 0


def test_admin_cancel_and_maxqueue(gearman_server):
    with Client([gearman_server.address]) as client:
        handle = client.submit("victim", "x", background=True).handle
        with Admin(gearman_server.address) as admin:
            admin.cancel_job(handle)
            with pytest.raises(ServerError) as info:
                admin.cancel_job("H:no-such:1")
            assert info.value.code == "UNKNOWN_JOB"
            admin.maxqueue("victim", 0)  # unlimited again; answered OK
            with pytest.raises(ValueError):
                admin.maxqueue("victim", 1, 2)


def test_admin_unreachable():
    with pytest.raises(GearpyConnectionError, match="cannot connect"):
        Admin(f"127.0.0.1:{free_port()}").status()
