"""Issue 18, the parts outside the server core: certificate subjects, files, ACL hardening.

Every test drives a real ``gearpy-server`` process (TLS with real certificates made by ``openssl``,
real files and symlinks) and checks what a user or an attacker would see.
"""

from __future__ import annotations

import os
import socket
import ssl
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gearpy.protocol import PacketType, encode_request
from gearpy.testing import ServerProcess, free_port, gearpy_server_argv

from support.pki import client_context, leaf_certificate
from support.raw import admin_line, exchange

T = PacketType
SERVER = [sys.executable, "-m", "gearpy.server"]


# -- helpers ------------------------------------------------------------------------------------


def start_failure(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a server that must refuse to start; one that serves instead is stopped and reported."""
    proc = subprocess.Popen(
        [*SERVER, "--port", str(free_port()), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the server started instead of refusing: {err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def tls_connect(server: ServerProcess, pki, cert: tuple[Path, Path]) -> ssl.SSLSocket:
    ctx = client_context(pki.ca, *cert)
    raw = socket.create_connection((server.host, server.port), timeout=10)
    return ctx.wrap_socket(raw, server_hostname="127.0.0.1")


# -- item 4: certificate subjects are compared structurally -------------------------------------


@pytest.fixture(scope="module")
def subject_certs(pki, tmp_path_factory):
    d = tmp_path_factory.mktemp("subjects")
    return {
        # One CN attribute whose value is "webapp,O=acme": it must not pass as CN=webapp + O=acme.
        "crafted": leaf_certificate(pki, d, "crafted", "/CN=webapp,O=acme"),
        "real": leaf_certificate(pki, d, "real", "/CN=webapp/O=acme"),
    }


@pytest.mark.timeout(120)
@pytest.mark.parametrize("entry", ["CN=webapp,O=acme", "cn = webapp, o = acme"])
def test_crafted_subject_does_not_pass_as_another(pki, tls_args, subject_certs, tmp_path, entry):
    acl = tmp_path / "acl.yml"
    acl.write_text(f'"{entry}": {{invoke: report}}\n"CN=webapp\\\\,O=acme": {{invoke: crafted_only}}\n')
    server = ServerProcess(
        gearpy_server_argv(*tls_args("--acl-file", str(acl), "--admin-allow", f"cert:{entry}")),
        log_path=tmp_path / "server.log",
    ).start()
    try:
        with tls_connect(server, pki, subject_certs["crafted"]) as s:
            kinds = [
                (p.kind, p.args[0])
                for p in exchange(
                    s,
                    encode_request(T.SUBMIT_JOB_BG, b"report", b"", b"x"),
                    encode_request(T.SUBMIT_JOB_BG, b"crafted_only", b"", b"x"),
                    replies=2,
                )
            ]
            assert kinds[0] == (T.ERROR, b"PERMISSION_DENIED")
            assert kinds[1][0] == T.JOB_CREATED  # its own, escaped, subject does match
            assert admin_line(s, b"create function f\r\n").startswith(b"ERR PERMISSION_DENIED")
        with tls_connect(server, pki, subject_certs["real"]) as s:
            replies = exchange(s, encode_request(T.SUBMIT_JOB_BG, b"report", b"", b"x"), replies=1)
            assert replies[0].kind == T.JOB_CREATED
            assert admin_line(s, b"create function f\r\n") == b"OK\r\n"
    finally:
        server.stop()
    log = server.log()
    # Refusals are logged, with the subject escaped so it reads as what it is.
    assert "acl: refused invoke of function b'report' for certificate 'CN=webapp\\\\,O=acme'" in log
    assert "admin-allow: refused 'create' from 127.0.0.1 (certificate 'CN=webapp\\\\,O=acme')" in log


def test_subject_parsing_units():
    from gearpy.errors import ConfigError
    from gearpy.server.certsubject import canonical, of_peercert

    crafted = of_peercert({"subject": ((("commonName", "webapp,O=acme"),),)})
    real = of_peercert({"subject": ((("commonName", "webapp"),), (("organizationName", "acme"),))})
    assert crafted != real
    assert canonical("CN=webapp,O=acme") == real
    assert canonical("commonName=webapp , O=acme") == real
    assert canonical(r"CN=webapp\,O=acme") == canonical(r"CN=webapp\2CO=acme") == crafted
    assert canonical("CN=a+UID=b,O=c") != canonical("CN=a,UID=b,O=c")  # multi-valued RDN kept apart
    newline = of_peercert({"subject": ((("commonName", "a\nb"),),)})
    assert newline == r"CN=a\0Ab" and canonical(newline) == newline  # one line, and round-trips
    for bad in ("", "CN", "CN=a,", "=x", "CN=#0403", "CN=a\\"):
        with pytest.raises(ConfigError):
            canonical(bad)


# -- hardening: ACL file shapes, refusals logged, warnings ---------------------------------------


def acl_server(tmp_path: Path, text: str) -> ServerProcess:
    """A plaintext server started with an ACL file holding ``text``."""
    acl = tmp_path / "acl.yml"
    acl.write_text(text)
    return ServerProcess(gearpy_server_argv("--acl-file", str(acl)), log_path=tmp_path / "s.log").start()


@pytest.mark.timeout(60)
def test_acl_list_means_the_list(tmp_path):
    server = acl_server(tmp_path, '"*": {register: [resize, thumbnail], invoke: [resize]}\n')
    try:
        with socket.create_connection((server.host, server.port), timeout=10) as s:
            replies = exchange(
                s,
                encode_request(T.CAN_DO, b"r"),  # a one-character pattern once allowed this
                encode_request(T.CAN_DO, b"resize"),
                encode_request(T.CAN_DO, b"thumbnail"),
                encode_request(T.SUBMIT_JOB_BG, b"thumbnail", b"", b"x"),
                encode_request(T.SUBMIT_JOB_BG, b"resize", b"", b"x"),
                replies=3,
            )
            assert [p.kind for p in replies] == [T.ERROR, T.ERROR, T.JOB_CREATED]
            with socket.create_connection((server.host, server.port), timeout=10) as a:
                status = admin_line(a, b"status\n")
                while not status.endswith(b".\n"):
                    status += a.recv(4096)
        rows = {line.split(b"\t")[0]: line.split(b"\t")[3] for line in status.splitlines()[:-1]}
        assert rows.get(b"resize") == b"1" and rows.get(b"thumbnail") == b"1" and b"r" not in rows
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"*": {register: }\n', "register of '*' is empty"),  # once: the pattern "None"
        ('"*": {register: ""}\n', "empty pattern"),
        ('"*": {register: [resize, [a, b]]}\n', "is ['a', 'b'], not text"),
        ('"*": {invoke: 42}\n', "is 42, not text"),
        ('"*": {register: [yes]}\n', "is True, not text"),
        ('"*":\n', "must be a mapping"),
        ('"*": {regster: x}\n', "unknown permission 'regster'"),
        ('"CN": {invoke: x}\n', "is not TYPE=value"),
        ('"CN=a,O=b": {}\n"CN=a, O=b": {}\n', "same subject"),
        ("- CN=a\n", "must map certificate subjects"),
    ],
)
def test_ambiguous_acl_files_are_refused_at_start(tmp_path, text, message):
    acl = tmp_path / "acl.yml"
    acl.write_text(text)
    out = start_failure("--acl-file", str(acl))
    assert out.returncode == 2, out.stderr  # a configuration error
    assert message in out.stderr and str(acl) in out.stderr
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1, out.stderr


@pytest.mark.timeout(60)
def test_acl_without_ca_file_warns_and_refusals_are_rate_limited(tmp_path):
    server = acl_server(tmp_path, '"CN=ops": {invoke: ".*"}\n"*": {}\n')
    try:
        with socket.create_connection((server.host, server.port), timeout=10) as s:
            submit = encode_request(T.SUBMIT_JOB_BG, b"evil\nfake line", b"", b"x")
            replies = exchange(s, *[submit] * 200, replies=200)
            assert {p.kind for p in replies} == {T.ERROR}
    finally:
        server.stop()
    log = server.log()
    assert "--acl-file without --ssl-ca-file" in log
    refused = [line for line in log.splitlines() if "acl: refused" in line]
    assert 1 <= len(refused) <= 10, len(refused)  # 200 refusals, at most 10 lines a minute
    assert "function b'evil\\nfake line' for a peer without certificate" in refused[0]
    assert "fake line" not in log.replace("b'evil\\nfake line'", "")  # the newline did not forge a line


def test_rate_limited_log_counts_what_it_dropped(caplog):
    import logging

    from gearpy.server.refusals import RateLimitedLog

    now = [0.0]
    logger = logging.getLogger("gearpy.test.refusals")
    limited = RateLimitedLog(logger, burst=3, interval=60, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="gearpy.test.refusals"):
        for i in range(10):
            limited.warning("refused %d", i)
        now[0] = 61.0
        limited.warning("refused again")
    assert [r.getMessage() for r in caplog.records] == [
        "refused 0",
        "refused 1",
        "refused 2",
        "7 more refusal(s) like these were not logged in 60 s",
        "refused again",
    ]


# -- item 9: files -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "code", "says"),
    [("--pid-file", 1, "cannot write pid file"), ("--log-file", 2, "cannot open log file")],
)
def test_symlinks_are_not_followed(tmp_path, option, code, says):
    """A symlink planted at the pid or log path must not make the server write to its target."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o600)
    link = tmp_path / "planted"
    link.symlink_to(victim)
    out = start_failure(option, str(link))
    assert out.returncode == code
    assert says in out.stderr and "symbolic link" in out.stderr, out.stderr
    assert "Traceback" not in out.stderr
    assert victim.read_text() == "precious\n" and link.is_symlink()


@pytest.mark.timeout(60)
def test_pid_file_of_a_running_server_is_kept_and_a_stale_one_replaced(tmp_path):
    pid_file = tmp_path / "gearpy.pid"
    pid_file.write_text("999999999\n")  # left by a server that died: no such process
    argv = gearpy_server_argv("--pid-file", str(pid_file))
    first = ServerProcess(argv, log_path=tmp_path / "1.log").start()
    try:
        deadline = time.monotonic() + 20
        while pid_file.read_text() != f"{first.proc.pid}\n" and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pid_file.read_text() == f"{first.proc.pid}\n"
        out = start_failure("--pid-file", str(pid_file))
        assert out.returncode == 1
        assert f"running process {first.proc.pid}" in out.stderr, out.stderr
        assert pid_file.read_text() == f"{first.proc.pid}\n"
    finally:
        first.stop()
    assert not pid_file.exists()


@pytest.mark.timeout(60)
def test_new_log_and_queue_files_are_not_world_readable(tmp_path):
    from gearpy.client import Client

    log_file = tmp_path / "logs" / "gearpy.log"
    log_file.parent.mkdir()
    db = tmp_path / "state" / "queue.db"
    old_umask = os.umask(0o022)  # the usual umask: files would be 0644
    try:
        server = ServerProcess(
            gearpy_server_argv("-l", str(log_file), "-q", f"sqlite://{db}"), log_path=tmp_path / "s.log"
        ).start()
    finally:
        os.umask(old_umask)
    try:
        with Client([server.address]) as client:
            client.submit("stored", b"secret payload", background=True, timeout=30)
        files = [log_file, db, Path(f"{db}-wal"), Path(f"{db}-shm")]
        modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
    finally:
        server.stop()
    assert modes[log_file.name] == 0o640, modes
    for name in (db.name, f"{db.name}-wal", f"{db.name}-shm"):
        assert modes[name] == 0o600, modes
    assert stat.S_IMODE(db.parent.stat().st_mode) & 0o007 == 0


@pytest.mark.timeout(60)
def test_existing_world_readable_queue_is_reported(tmp_path):
    db = tmp_path / "queue.db"
    db.touch()
    db.chmod(0o644)
    server = ServerProcess(gearpy_server_argv("-q", f"sqlite://{db}"), log_path=tmp_path / "s.log").start()
    try:  # the port listens before the store is opened: wait for the server to say it serves
        deadline = time.monotonic() + 30
        while "listening on" not in server.log() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        server.stop()
    assert "can be read by other users" in server.log()
    assert stat.S_IMODE(db.stat().st_mode) == 0o644  # the operator's file is left as it is
