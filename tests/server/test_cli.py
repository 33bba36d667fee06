"""gearpy-server as a process: options, config layering, signals, pid file, errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml

from gearpy.protocol import PacketType, encode_request
from gearpy.server.jobs import JOB_BYTES
from gearpy.testing import ServerProcess, free_port, gearpy_server_argv, wait_for_port

from support.raw import admin_line, read_packets
from support.waits import wait_until

SERVER = [sys.executable, "-m", "gearpy.server"]


def run_cli(*args: str, env: dict | None = None, timeout: float = 20) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run(
        [*SERVER, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        stdin=subprocess.DEVNULL,
    )


def admin(address: tuple[str, int], line: bytes) -> bytes:
    with socket.create_connection(address, timeout=5) as s:
        return admin_line(s, line)


def test_print_config_layers_defaults_file_env_flags(tmp_path):
    cfg = tmp_path / "gearpy.yml"
    cfg.write_text(yaml.safe_dump({"server": {"port": 5000, "job_retries": 3, "worker_wakeup": 2}}))
    out = run_cli("--config", str(cfg), "--print-config", "-w", "7", env={"GEARPY_JOB_RETRIES": "4"})
    assert out.returncode == 0, out.stderr
    shown = yaml.safe_load(out.stdout)["server"]
    assert shown["listen"] == "127.0.0.1"  # default: loopback only
    assert shown["port"] == 5000  # from the file
    assert shown["job_retries"] == 4  # environment beats the file
    assert shown["worker_wakeup"] == 7  # flag beats everything


def test_print_config_hides_passwords():
    out = run_cli("--print-config", "-q", "mysql://root:s3cret@127.0.0.1:3306/test")
    assert out.returncode == 0, out.stderr
    assert "s3cret" not in out.stdout
    assert "root:***@" in out.stdout


def test_bad_option_is_one_line_and_exit_2():
    out = run_cli("--no-such-option")
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0
    assert "Traceback" not in out.stderr
    assert out.stderr.startswith("gearpy-server:")


def test_bad_env_value_is_one_line_and_exit_2():
    out = run_cli("--print-config", env={"GEARPY_PORT": "notaport"})
    assert out.returncode == 2
    assert "GEARPY_PORT" in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_verbose_level_is_rejected():
    out = run_cli("--verbose", "CHATTY", "--print-config")
    assert out.returncode == 2
    assert "CHATTY" in out.stderr


@pytest.mark.slow
def test_port_in_use_exits_1_with_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        out = run_cli("--port", str(port))
    assert out.returncode == 1
    assert "cannot listen" in out.stderr
    assert "Traceback" not in out.stderr


def test_version_flag():
    out = run_cli("-V")
    assert out.returncode == 0
    assert out.stdout.startswith("gearpy-server ")


@pytest.mark.slow
def test_sigterm_stops_cleanly_and_removes_pid_file(tmp_path):
    pid_file = tmp_path / "gearpy.pid"
    server = ServerProcess(gearpy_server_argv("--pid-file", str(pid_file))).start()
    try:
        # the server writes its pid file just after it starts listening: wait for it (bounded)
        pid_text = wait_until(lambda: pid_file.exists() and pid_file.read_text(), "the pid file", timeout=10)
        assert int(pid_text) == server.proc.pid
        reply = admin((server.host, server.port), b"getpid\n")
        assert reply == b"OK %d\n" % server.proc.pid
    finally:
        code = server.stop()
    assert code == 0
    assert not pid_file.exists()
    assert "Traceback" not in server.log()


@pytest.mark.slow
def test_sigusr1_drains_then_exits(tmp_path):
    server = ServerProcess(gearpy_server_argv()).start()
    addr = (server.host, server.port)
    try:
        worker = socket.create_connection(addr, timeout=5)
        worker.sendall(encode_request(PacketType.CAN_DO, b"slow"))
        client = socket.create_connection(addr, timeout=5)
        client.sendall(encode_request(PacketType.SUBMIT_JOB_BG, b"slow", b"", b"x"))
        [created] = read_packets(client, 1)
        assert created.kind == PacketType.JOB_CREATED
        server.signal(signal.SIGUSR1)
        # New connections are refused once draining starts...
        deadline = time.monotonic() + 5
        refused = False
        while time.monotonic() < deadline:
            try:
                socket.create_connection(addr, timeout=1).close()
                time.sleep(0.05)
            except OSError:
                refused = True
                break
        assert refused
        # ...but the process stays up while a job is left, and existing connections still work.
        assert server.proc.poll() is None
        worker.sendall(encode_request(PacketType.GRAB_JOB))
        [assign] = read_packets(worker, 1)
        assert assign.kind == PacketType.JOB_ASSIGN
        worker.sendall(encode_request(PacketType.WORK_COMPLETE, assign.args[0], b"done"))
        assert server.proc.wait(10) == 0
        worker.close()
        client.close()
    finally:
        server.stop()


@pytest.mark.slow
def test_env_listen_and_port_are_used():
    port = free_port()
    proc = subprocess.Popen(
        SERVER,
        env={**os.environ, "GEARPY_PORT": str(port), "GEARPY_LISTEN": "127.0.0.1"},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port("127.0.0.1", port, proc=proc)
        assert admin(("127.0.0.1", port), b"version\n").startswith(b"OK ")
    finally:
        proc.terminate()
        proc.wait(10)
    assert proc.returncode == 0


@pytest.mark.slow
def test_sighup_reopens_log_file(tmp_path):
    log_file = tmp_path / "server.log"
    server = ServerProcess(gearpy_server_argv("--log-file", str(log_file), "--verbose", "INFO")).start()
    try:
        rotated = tmp_path / "server.log.1"
        os.rename(log_file, rotated)
        server.signal(signal.SIGHUP)
        deadline = time.monotonic() + 5
        while not log_file.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        admin((server.host, server.port), b"version\n")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and "opened" not in log_file.read_text():
            time.sleep(0.05)
        assert "connection" in log_file.read_text()
        assert "listening" in rotated.read_text()
    finally:
        server.stop()


@pytest.mark.slow
def test_max_queued_bytes_refuses_new_jobs_with_queue_error_and_keeps_the_rest():
    # Room for two 400-byte jobs, each counted with its record (issue 18.5), not for a third.
    limit = 2 * (400 + JOB_BYTES) + 100
    server = ServerProcess(gearpy_server_argv("--max-queued-bytes", str(limit))).start()
    try:
        with socket.create_connection((server.host, server.port), timeout=5) as s:
            for _ in range(3):
                s.sendall(encode_request(PacketType.SUBMIT_JOB_BG, b"f", b"", b"x" * 400))
            events = read_packets(s, 3)
        kinds = [e.kind for e in events]
        assert kinds == [PacketType.JOB_CREATED, PacketType.JOB_CREATED, PacketType.ERROR]
        assert events[2].args[0] == b"QUEUE_ERROR"
        assert b"max_queued_bytes" in events[2].args[1]
        assert admin((server.host, server.port), b"status\n") == b"f\t2\t0\t0\n.\n"
    finally:
        server.stop()


def test_gearmand_process_options_work(tmp_path):
    """-d, -f, --syslog, --config-file and the ignored ones are accepted, as gearmand's are."""
    port = free_port()
    pid_file = tmp_path / "d.pid"
    conf = tmp_path / "gearmand.conf"
    conf.write_text(f"# gearmand-style options\n--port={port}\n--verbose=INFO\n")
    out = run_cli(
        "--config-file",
        str(conf),
        "-d",
        "-f",
        "4096",
        "--coredump",
        "--hashtable-buckets",
        "100",
        "--http-port",
        "8080",
        "-t",
        "4",
        "--pid-file",
        str(pid_file),
        "--log-file",
        str(tmp_path / "d.log"),
    )
    assert out.returncode == 0, out.stderr  # the parent returns once the daemon serves
    pid = int(pid_file.read_text())
    try:
        assert admin(("127.0.0.1", port), b"getpid\n") == b"OK %d\n" % pid
        assert admin(("127.0.0.1", port), b"verbose\n") == b"OK INFO\n"  # from the config file
        with open(f"/proc/{pid}/limits") as f:
            assert any(line.startswith("Max open files") and "4096" in line for line in f)
    finally:
        os.kill(pid, signal.SIGTERM)


def test_daemon_start_failure_is_reported_by_the_parent():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        out = run_cli("-d", "--port", str(s.getsockname()[1]))
    assert out.returncode == 1
    assert out.stderr.count("cannot listen") == 1


def test_http_protocol_plugin_is_refused_clearly():
    out = run_cli("-r", "http")
    assert out.returncode == 2
    assert "HTTP protocol plugin is not supported" in out.stderr
