"""gearpy-server as a process: configuration errors found before listening, each with its exact line
and exit code (issue #13 items 1, 2, 4-7, 11, 12)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from gearpy import _accel, exitcodes
from gearpy.testing import ServerProcess, free_port, gearpy_server_argv

SERVER = [sys.executable, "-m", "gearpy.server"]


def run_cli(*args: str, env: dict[str, str] | None = None, argv: list[str] | None = None):
    # No GEARPY_* setting leaks in from the caller, but the hot-path mode of this run does.
    full_env = {
        k: v for k, v in os.environ.items() if not k.startswith("GEARPY_") or k == "GEARPY_PURE_PYTHON"
    }
    full_env.update(env or {})
    return subprocess.run(
        [*(argv or SERVER), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=full_env,
        stdin=subprocess.DEVNULL,
    )


def assert_refused(out: subprocess.CompletedProcess, line: str, code: int = exitcodes.USAGE) -> None:
    """Exactly one line on stderr, the documented code, and the server never listened."""
    assert (out.returncode, out.stderr) == (code, line + "\n"), out.stderr
    assert "listening" not in out.stderr and "Traceback" not in out.stderr


@pytest.mark.parametrize("port", ["99999", "90000", "-1", "0", "65536"])
def test_port_outside_1_65535_is_a_usage_error(port):
    assert_refused(
        run_cli("-p", port),
        f"gearpy-server: Invalid value for '-p' / '--port': {port} is not in the range 1<=x<=65535.",
    )


def test_port_from_environment_or_file_is_checked_too(tmp_path):
    assert_refused(
        run_cli("--print-config", env={"GEARPY_PORT": "70000"}),
        "gearpy-server: port 70000 is out of range (1-65535)",
    )
    cfg = tmp_path / "gearpy.yml"
    cfg.write_text("server: {port: 0}\n")
    assert_refused(run_cli("--config", str(cfg)), "gearpy-server: port 0 is out of range (1-65535)")


def test_sqlite_directory_must_exist(tmp_path):
    missing = tmp_path / "missing-dir"
    url = f"sqlite://{missing}/q.db"
    assert_refused(
        run_cli("-p", str(free_port()), "-q", url),
        f"gearpy-server: queue store {url}: directory {missing} does not exist (create it first; "
        "gearpy does not, so a typo cannot start an empty queue)",
    )
    assert not missing.exists()


def test_sqlite_single_slash_gets_a_hint():
    assert_refused(
        run_cli("-q", "sqlite:/relative.db"),
        "gearpy-server: queue store sqlite:/relative.db: write sqlite:///relative.db for the file "
        "/relative.db, or sqlite:relative.db for a path relative to the working directory",
    )


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [
        ("mysql://root@127.0.0.1:3306/test", "pymysql", "mysql"),
        ("postgresql://postgres@127.0.0.1:5432/test", "pg8000", "postgres"),
        ("redis://127.0.0.1:6379/0", "redis", "redis"),
    ],
)
def test_missing_store_driver_names_the_extra(url, module, extra):
    # The driver is made unimportable in the server process itself (as if the extra was not installed).
    argv = [
        sys.executable,
        "-c",
        f"import sys; sys.modules[{module!r}] = None; from gearpy.server.cli import main; main()",
    ]
    scheme = url.split(":", 1)[0]
    assert_refused(
        run_cli("-p", str(free_port()), "-q", url, argv=argv),
        f"gearpy-server: queue store {scheme}:// needs the {module} driver: pip install 'gearpy[{extra}]'",
    )


def test_bad_metrics_address_is_found_before_listening():
    assert_refused(
        run_cli("-p", str(free_port()), "--metrics", "127.0.0.1:99999"),
        "gearpy-server: --metrics: port 99999 is out of range (1-65535) in server address '127.0.0.1:99999'",
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = run_cli("-p", str(free_port()), "--metrics", f"127.0.0.1:{port}")
    # A metrics port in use is found at bind time, still before "listening" is logged.
    assert out.returncode == exitcodes.USAGE, out.stderr
    assert out.stderr.endswith(
        f"gearpy-server: cannot serve metrics on 127.0.0.1:{port}: "
        f"Address already in use: ('127.0.0.1', {port})\n"
    ), out.stderr
    assert "listening" not in out.stderr and "Traceback" not in out.stderr


def test_pid_file_directory_is_checked_before_listening(tmp_path):
    pid = tmp_path / "missing" / "gearpy.pid"
    assert_refused(
        run_cli("-p", str(free_port()), "-P", str(pid)),
        f"gearpy-server: cannot write pid file {pid}: directory {pid.parent} is missing or not writable",
    )


def test_tls_and_admin_errors_are_configuration_errors():
    assert_refused(
        run_cli("-p", str(free_port()), "--ssl"), "gearpy-server: --ssl needs --ssl-certificate and --ssl-key"
    )
    assert_refused(
        run_cli("-p", str(free_port()), "--admin-allow", "not-an-ip"),
        "gearpy-server: admin_allow: not an address, network or cert:SUBJECT: 'not-an-ip'",
    )


@pytest.mark.parametrize(
    ("yaml_text", "line"),
    [
        ("workers_keys: atom1\n", "config file: unknown key 'workers_keys' (did you mean 'workers_key'?)"),
        ("sever: {port: 4731}\n", "config file: unknown key 'sever' (did you mean 'server'?)"),
        ("server: {prot: 4731}\n", "config file: unknown key 'server.prot' (did you mean 'port'?)"),
    ],
)
def test_unknown_yaml_keys_are_rejected_at_every_level(tmp_path, yaml_text, line):
    cfg = tmp_path / "gearpy.yml"
    cfg.write_text(yaml_text)
    assert_refused(run_cli("--config", str(cfg), "--print-config"), f"gearpy-server: {line}")


def _serve(tmp_path, *args: str) -> ServerProcess:
    return ServerProcess(gearpy_server_argv(*args), log_path=tmp_path / "server.log").start()


def _wait_log(server: ServerProcess, text: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while text not in server.log():
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)


@pytest.mark.slow
def test_startup_log_names_the_store_and_the_replayed_count_even_0(tmp_path):
    server = _serve(tmp_path)
    try:
        _wait_log(server, "listening")
        assert "NOTICE gearpy.server: queue store memory: 0 job(s) replayed\n" in server.log()
    finally:
        server.stop()
    db = tmp_path / "q.db"
    server = _serve(tmp_path, "-q", f"sqlite://{db}")
    try:
        out = subprocess.run(
            [sys.executable, "-m", "gearpy.client", "-s", server.address, "submit", "-b", "later", "x"],
            capture_output=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        server.restart()
        _wait_log(server, "1 job(s) replayed")
        assert f"queue store sqlite://{db} table=gearpy_queue: 1 job(s) replayed\n" in server.log()
    finally:
        server.stop()


@pytest.mark.external
def test_startup_log_redacts_the_store_password(tmp_path):
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", 5432)) != 0:
            pytest.skip("PostgreSQL is not reachable at 127.0.0.1:5432")
    table = f"gearpy_cli_{os.getpid()}"
    # PostgreSQL on the test machines trusts local users: the password is accepted and unused.
    url = f"postgresql://postgres:s3cret-pw@127.0.0.1:5432/test?table={table}"
    server = _serve(tmp_path, "-q", url, "--queue-table", table)
    try:
        _wait_log(server, "listening")
        assert (
            f"queue store postgresql://postgres:***@127.0.0.1:5432/test table={table}: 0 job(s) replayed"
            in (server.log())
        )
        assert "s3cret-pw" not in server.log()
    finally:
        server.stop()
        import pg8000.native

        conn = pg8000.native.Connection("postgres", host="127.0.0.1", port=5432, database="test")
        conn.run(f'DROP TABLE IF EXISTS "{table}"')
        conn.close()


def test_failing_connection_handler_logs_one_line_not_a_traceback(tmp_path):
    """A bug in handling one read (simulated: ECHO_REQ "boom" raises) costs that connection only."""
    inject = (
        "from gearpy.server import core\n"
        "receive = core.ServerCore.receive\n"
        "def failing(self, conn, decoder, data):\n"
        "    if data.endswith(b'boom'):\n"
        "        raise ModuleNotFoundError(\"No module named 'gearpy.server.admin'\")\n"
        "    return receive(self, conn, decoder, data)\n"
        "core.ServerCore.receive = failing\n"
        "from gearpy.server.cli import main\n"
        "main()\n"
    )
    port = free_port()
    server = ServerProcess(
        lambda p: [sys.executable, "-c", inject, "-p", str(p)], port=port, log_path=tmp_path / "s.log"
    ).start()
    try:
        from gearpy.protocol import PacketType, encode_request

        with socket.create_connection((server.host, port), timeout=5) as s:
            s.sendall(encode_request(PacketType.ECHO_REQ, b"boom"))
            assert s.recv(100) == b""  # closed
        with socket.create_connection((server.host, port), timeout=5) as s:
            s.sendall(b"version\n")  # the server still serves everyone else
            assert s.recv(100).strip()
        _wait_log(server, "internal error")
        log = server.log()
        assert "Traceback" not in log
        lines = [ln for ln in log.splitlines() if "internal error" in ln]
        assert len(lines) == 1 and lines[0].endswith(
            ": internal error: ModuleNotFoundError: No module named 'gearpy.server.admin'"
        ), log
    finally:
        server.stop()


def test_ctrl_c_exits_130_and_sigterm_0(tmp_path):
    server = _serve(tmp_path)
    _wait_log(server, "listening")
    server.signal(signal.SIGINT)
    assert server.proc is not None and server.proc.wait(20) == exitcodes.INTERRUPTED
    server = _serve(tmp_path)
    _wait_log(server, "listening")
    assert server.stop() == exitcodes.OK


def test_version_and_help():
    out = run_cli("--version")
    assert (out.returncode, out.stdout) == (0, f"gearpy-server 0.1.0 (hot path: {_accel.mode()})\n")
    out = run_cli("--help")
    assert out.returncode == 0
    text = out.stdout
    assert "``" not in text and ":class:" not in text
    assert "Exit codes:\n    0    success" in text and "130  interrupted by Ctrl-C (SIGINT)" in text
    assert "Environment: every setting is also a variable (GEARPY_" in text
    assert "GEARPY_ACL_FILE," in " ".join(text.split())
    for ignored in ("-t/--threads", "--coredump", "--hashtable-buckets", "--http-port"):
        assert f"\n    {ignored}" in text.split("Accepted for gearmand compatibility and ignored:")[1]
