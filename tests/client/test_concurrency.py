"""One Client shared by threads, by gevent greenlets (in a monkey-patched subprocess), and after fork."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

from gearpy.client import Client


def test_threads_share_one_client(gearman_server, gearman_worker):
    gearman_worker(gearman_server, "upper", "tr", "a-z", "A-Z")
    gearman_worker(gearman_server, "upper", "tr", "a-z", "A-Z")
    results: dict[tuple[int, int], bytes] = {}
    errors: list[BaseException] = []
    with Client([gearman_server.address], timeout=30) as client:

        def work(t: int) -> None:
            try:
                for i in range(15):
                    job = client.submit("upper", f"t{t}x{i}")
                    results[t, i] = job.result(30)
                    if i % 5 == 0:
                        assert not client.status(job.handle).known
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
        for th in threads:
            th.start()
        for th in threads:
            th.join(60)
        assert not any(th.is_alive() for th in threads)
    assert not errors, errors
    assert results == {(t, i): f"T{t}X{i}".encode() for t in range(6) for i in range(15)}


def _run_script(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True, timeout=60
    )


def test_gevent_monkey_patched_greenlets(gearman_server, gearman_worker):
    gearman_worker(gearman_server, "upper", "tr", "a-z", "A-Z")
    proc = _run_script(
        """
        from gevent import monkey; monkey.patch_all()
        import sys, gevent
        from gearpy.client import Client
        client = Client([sys.argv[1]], timeout=30)
        def one(i):
            return client.submit("upper", f"g{i}").result(30)
        greenlets = [gevent.spawn(one, i) for i in range(20)]
        gevent.joinall(greenlets, timeout=40, raise_error=True)
        print(",".join(g.value.decode() for g in greenlets))
        """,
        gearman_server.address,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ",".join(f"G{i}" for i in range(20))


def test_fork_child_reconnects(gearman_server, gearman_worker):
    gearman_worker(gearman_server, "upper", "tr", "a-z", "A-Z")
    proc = _run_script(
        """
        import os, sys
        from gearpy.client import Client
        client = Client([sys.argv[1]], timeout=30)
        assert client.submit("upper", "parent").result(30) == b"PARENT"
        parent_conn = client.connection(client.servers[0])
        pid = os.fork()
        if pid == 0:
            ok = client.submit("upper", "child").result(30) == b"CHILD"
            ok = ok and client.connection(client.servers[0]) is not parent_conn
            os._exit(0 if ok else 1)
        _, status = os.waitpid(pid, 0)
        assert client.submit("upper", "again").result(30) == b"AGAIN"
        print("child", os.waitstatus_to_exitcode(status))
        """,
        gearman_server.address,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "child 0"
