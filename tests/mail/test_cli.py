"""`chatserver create-inbox --channel email` and `chatserver serve` in embedded mode taking mail by SMTP."""

from __future__ import annotations

import json
import smtplib
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.e2e.harness import ServerProcess, free_port, run_cli
from tests.mail.helpers import ADDRESS, mail, wire

pytestmark = pytest.mark.slow


def test_embedded_serve_takes_mail_and_never_shows_the_imap_password(tmp_path: Path) -> None:
    smtp_port = free_port()
    env = {
        "CHATSERVER_DATA_DIR": str(tmp_path / "data"),
        "CHATSERVER_ADMIN_PASSWORD": "admin-password-1",
        "CHATSERVER_SMTP_LISTEN": f"127.0.0.1:{smtp_port}",
        "CHATSERVER_IMAP_POLL_S": "30",
    }
    imap = "imap://support:hunter2-secret@127.0.0.1:1/INBOX"
    out = run_cli(
        env, "create-inbox", "--channel", "email", "--name", "Support", "--address", ADDRESS,
        "--imap-url", imap, "--imap-processed", "move:Done", "--json",
    )  # fmt: skip
    created = json.loads(out)
    assert created["channel"] == "email" and "hunter2" not in out
    assert created["email"] == {
        "address": ADDRESS,
        "tickets": "always",
        "imap": {"url": "imap://support@127.0.0.1:1/INBOX", "processed": "move:Done"},
    }
    server = ServerProcess(env=env, log=tmp_path / "out.log")
    server.start()
    try:
        with smtplib.SMTP("127.0.0.1", smtp_port, timeout=30) as c:
            assert c.sendmail("ann@example.org", [ADDRESS], wire(mail("by SMTP"))) == {}
        with httpx.Client(base_url=server.url) as http:
            login = http.post(
                "/api/v1/auth/login", json={"email": "admin@example.com", "password": "admin-password-1"}
            )
            assert login.status_code == 200, login.text
            inboxes = http.get("/api/v1/inboxes")
            assert inboxes.status_code == 200 and "hunter2" not in inboxes.text
            assert any(
                i.get("email", {}) and i["email"]["address"] == ADDRESS for i in inboxes.json()["items"]
            )
            convs = http.get("/api/v1/conversations").json()["items"]
            assert [c["channel"] for c in convs] == ["email"]
    finally:
        server.stop()
    # the IMAP poller ran inside serve: its refused connection was logged, without the password
    log = (tmp_path / "out.log").read_text()
    assert "IMAP imap://support@127.0.0.1:1/INBOX" in log and "hunter2" not in log


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--address", "not-an-address"], "--address: address must be an email address"),
        (["--address", "support+x@shop.example"], "without a +tag"),
        ([], "needs --address"),
        (["--address", ADDRESS, "--imap-url", "pop3://u:p@h/INBOX"], "--imap-url"),
        (["--address", ADDRESS, "--imap-url", "imaps://u@h/INBOX"], "needs the password"),
        (["--address", ADDRESS, "--imap-processed", "flag"], "needs imap_url"),
        (
            ["--address", ADDRESS, "--imap-url", "imaps://u:p@h/INBOX", "--imap-processed", "delete"],
            "flag or move",
        ),
    ],
)
def test_bad_email_inbox_flags_are_refused(tmp_path: Path, args: list[str], message: str) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "chatserver.cli", "create-inbox", "--channel", "email", "--name", "S", *args],
        env={"CHATSERVER_DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and message in out.stderr, out.stderr
