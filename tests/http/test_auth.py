"""Credentials, roles, sessions and CSRF on the dashboard (``--http-auth-file``)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml


def _tokens(auth_file: Path) -> tuple[str, str]:
    admin, read = (auth_file.parent / "tokens").read_text().split()
    return admin, read


def test_the_auth_file_holds_only_salted_hashes(auth_file):
    data = yaml.safe_load(auth_file.read_text())
    admin_token, read_token = _tokens(auth_file)
    text = auth_file.read_text()
    assert "alice-secret" not in text and admin_token not in text and read_token not in text
    alice, bob = data["users"]["alice"]["password"], data["users"]["bob"]["password"]
    assert alice.startswith("scrypt$") and bob.startswith("scrypt$")
    assert alice.split("$")[4] != bob.split("$")[4]  # salts differ
    assert data["users"]["alice"]["role"] == "admin" and data["tokens"]["grafana"]["role"] == "read"
    assert auth_file.stat().st_mode & 0o077 == 0


def test_credentials_are_required_and_roles_enforced(make_dash, auth_file):
    dash = make_dash("--http-auth-file", str(auth_file))
    admin_token, read_token = _tokens(auth_file)
    r = dash.get("/api/v1/overview")
    assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
    assert dash.get("/metrics").status == 401
    assert dash.get("/api/v1/overview", token="gp_wrong").status == 401
    assert dash.get("/api/v1/overview", basic=("alice", "wrong")).status == 401
    assert dash.get("/healthz").status == 200  # for load balancers

    assert dash.get("/api/v1/overview", token=read_token).status == 200
    assert dash.get("/metrics", token=read_token).status == 200
    job = {"function": "f", "background": True}
    r = dash.post("/api/v1/jobs", job, token=read_token)
    assert r.status == 403 and "read role" in r.json["error"]["message"]
    assert dash.post("/api/v1/jobs", job, basic=("bob", "bob-secret")).status == 403
    assert dash.post("/api/v1/jobs", job, token=admin_token).status == 201
    assert dash.post("/api/v1/jobs", job, basic=("alice", "alice-secret")).status == 201
    log = dash.server.log()
    assert "HTTP submit f (background)" in log and "by ops@127.0.0.1" in log and "by alice@127.0.0.1" in log
    # Pages send the browser to the login form.
    r = dash.get("/functions")
    assert r.status == 303 and r.headers["Location"] == "/login?next=/functions"


def test_login_session_and_csrf(make_dash, auth_file):
    dash = make_dash("--http-auth-file", str(auth_file))
    form = b"user=alice&password=wrong&next=/jobs"
    hdrs = {"Content-Type": "application/x-www-form-urlencoded"}
    r = dash.request("POST", "/login", raw=form, headers=hdrs)
    assert r.status == 303 and r.headers["Location"].startswith("/login?failed=1")
    assert "Set-Cookie" not in r.headers
    r = dash.request("POST", "/login", raw=b"user=alice&password=alice-secret&next=/jobs", headers=hdrs)
    assert r.status == 303 and r.headers["Location"] == "/jobs"
    cookie = r.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    sid = re.match(r"gearpy_session=([^;]+)", cookie).group(1)
    with_cookie = {"Cookie": f"gearpy_session={sid}"}
    session = dash.get("/api/v1/session", headers=with_cookie).json
    assert (session["user"], session["role"], session["auth"]) == ("alice", "admin", True)
    job = {"function": "f", "background": True}
    r = dash.post("/api/v1/jobs", job, headers=with_cookie)
    assert r.status == 403 and r.json["error"]["code"] == "csrf"
    r = dash.post("/api/v1/jobs", job, headers={**with_cookie, "X-CSRF-Token": "forged"})
    assert r.status == 403
    r = dash.post("/api/v1/jobs", job, headers={**with_cookie, "X-CSRF-Token": session["csrf"]})
    assert r.status == 201
    # Logging out ends the session.
    dash.request("POST", "/logout", headers=with_cookie)
    assert dash.get("/api/v1/overview", headers=with_cookie).status == 401
    # An open redirect is not offered.
    r = dash.request(
        "POST", "/login", raw=b"user=alice&password=alice-secret&next=//evil.example", headers=hdrs
    )
    assert r.headers["Location"] == "/"


def test_non_loopback_with_credentials_starts(make_dash, auth_file):
    dash = make_dash("--http-auth-file", str(auth_file), host="0.0.0.0")
    assert dash.get("/api/v1/overview").status == 401
    assert dash.get("/api/v1/overview", basic=("bob", "bob-secret")).status == 200


def test_acl_names_http_users(make_dash, auth_file, tmp_path):
    acl = tmp_path / "acl.yaml"
    acl.write_text('"UID=alice,OU=gearpy-http": {invoke: "reports"}\n"*": {}\n')
    dash = make_dash("--http-auth-file", str(auth_file), "--acl-file", str(acl))
    admin_token, _ = _tokens(auth_file)
    alice = ("alice", "alice-secret")
    assert dash.post("/api/v1/jobs", {"function": "reports", "background": True}, basic=alice).status == 201
    assert dash.post("/api/v1/jobs", {"function": "other", "background": True}, basic=alice).status == 403
    r = dash.post("/api/v1/jobs", {"function": "reports", "background": True}, token=admin_token)
    assert r.status == 403  # the token "ops" has no rule, and "*" grants nothing


def test_auth_command_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just a list\n")
    proc = subprocess.run(
        [sys.executable, "-m", "gearpy.server.http.auth", "add-token", str(bad), "x"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1 and "must hold" in proc.stderr and "Traceback" not in proc.stderr
    empty = subprocess.run(
        [
            sys.executable,
            "-m",
            "gearpy.server.http.auth",
            "add-user",
            str(tmp_path / "a.yaml"),
            "x",
            "--password-stdin",
        ],
        input="\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert empty.returncode == 2 and not (tmp_path / "a.yaml").exists()
