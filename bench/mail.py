"""Email benchmarks: inbound messages/s through SMTP to a committed conversation message, and the parse
time (p50/p99) of a 1 MB HTML mail.

    .venv/bin/python bench/mail.py            # about a minute
    .venv/bin/python bench/mail.py --messages 2000 --clients 16

Inbound: a real `chatserver serve` in embedded mode (SQLite, WAL, synchronous=FULL) with
CHATSERVER_SMTP_LISTEN, an email inbox made with `chatserver create-inbox --channel email --tickets
on-escalation`, and N smtplib clients in threads, each sending one mail per SMTP transaction and waiting
for the 250 (which the server gives only after the commit). Each mail opens a new conversation (a new
thread); half of a second run's mails are replies threaded by In-Reply-To. Writes bench/results/email.json.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Imports resolve from the project root (the package), not from bench/.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse
import json
import os
import platform
import smtplib
import sqlite3
import statistics
import subprocess
import tempfile
import threading
import time
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from adapters.email.parse import parse_email
from bench.common import ROOT, free_port

ADDRESS = "support@shop.example"


def _mail(i: int, reply_to: str | None = None) -> bytes:
    m = EmailMessage()
    m["From"] = f"Customer {i} <c{i % 200}@example.org>"
    m["To"] = ADDRESS
    m["Subject"] = f"Order {i}"
    m["Message-ID"] = f"<bench-{i}-{os.getpid()}@example.org>"
    if reply_to:
        m["In-Reply-To"] = reply_to
        m["References"] = reply_to
    m.set_content(f"Hello, question number {i}.\n\nOn Monday, Support wrote:\n> earlier text\n")
    return m.as_bytes(policy=SMTP)


def _cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "chatserver.cli", *args], env=env, capture_output=True, text=True, timeout=120
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return out.stdout.strip()


def inbound(messages: int, clients: int) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="emailbench-"))
    smtp_port, http_port = free_port(), free_port()
    env = {
        **os.environ,
        "CHATSERVER_DATA_DIR": str(tmp),
        "CHATSERVER_SMTP_LISTEN": f"127.0.0.1:{smtp_port}",
        "CHATSERVER_LOG_LEVEL": "warning",
    }
    _cli(env, "migrate")
    # on-escalation: the figure is mail -> committed conversation message, as it always was (with the
    # default, always, each new thread also opens a ticket)
    _cli(
        env, "create-inbox", "--channel", "email", "--name", "Support", "--address", ADDRESS,
        "--tickets", "on-escalation",
    )  # fmt: skip
    log = (tmp / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "chatserver.cli", "serve", "--port", str(http_port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                smtplib.SMTP("127.0.0.1", smtp_port, timeout=2).quit()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError((tmp / "server.log").read_text()[-2000:]) from None
                time.sleep(0.2)

        def run(offset: int, count: int, reply: bool) -> tuple[float, int]:
            next_i = iter(range(offset, offset + count))
            lock = threading.Lock()
            errors = 0

            def worker() -> None:
                nonlocal errors
                with smtplib.SMTP("127.0.0.1", smtp_port, timeout=60) as c:
                    while True:
                        with lock:
                            i = next(next_i, None)
                        if i is None:
                            return
                        parent = f"<bench-{i - offset}-{os.getpid()}@example.org>" if reply else None
                        try:
                            c.sendmail(f"c{i % 200}@example.org", [ADDRESS], _mail(i, parent))
                        except smtplib.SMTPException:
                            with lock:
                                errors += 1

            threads = [threading.Thread(target=worker) for _ in range(clients)]
            start = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return count / (time.perf_counter() - start), errors

        new_rate, new_errors = run(0, messages, False)
        reply_rate, reply_errors = run(messages, messages, True)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    db = sqlite3.connect(tmp / "chatserver.db")
    stored = db.execute("select count(*) from email_messages where message_id is not null").fetchone()[0]
    threaded = db.execute("select count(*) from email_messages where thread_kind = 'headers'").fetchone()[0]
    convs = db.execute("select count(*) from conversations where channel = 'email'").fetchone()[0]
    db.close()
    return {
        "new_thread_msgs_per_s": round(new_rate, 1),
        "reply_msgs_per_s": round(reply_rate, 1),
        "sent": 2 * messages,
        "stored": stored,
        "threaded_by_headers": threaded,
        "conversations": convs,
        "errors": new_errors + reply_errors,
        "clients": clients,
    }


def html_mail(size: int = 1024 * 1024) -> bytes:
    row = "<tr><td><b>Item</b> &amp; <a href='https://shop.example/p/1'>link</a></td><td>Grüße €</td></tr>\n"
    html = "<html><head><style>td{color:red}</style></head><body><table>"
    html += (
        row * (size // len(row.encode())) + "</table><blockquote>old quoted text</blockquote></body></html>"
    )
    m = EmailMessage()
    m["From"] = "a@example.org"
    m["To"] = ADDRESS
    m["Subject"] = "big html"
    m["Message-ID"] = "<html@example.org>"
    m.set_content(html, subtype="html")
    return m.as_bytes(policy=SMTP)


def parse_times(runs: int) -> dict[str, float]:
    raw = html_mail()
    parse_email(raw)  # warm up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        parse_email(raw)
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {
        "mail_bytes": len(raw),
        "runs": runs,
        "p50_ms": round(statistics.median(times), 1),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 1),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--messages", type=int, default=300)
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--parse-runs", type=int, default=50)
    p.add_argument("--output", default=str(ROOT / "bench" / "results" / "email.json"))
    args = p.parse_args()
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(), "load": os.getloadavg()},
        "inbound_smtp_sqlite": inbound(args.messages, args.clients),
        "parse_1mb_html": parse_times(args.parse_runs),
    }
    s: Any = result["inbound_smtp_sqlite"]
    h: Any = result["parse_1mb_html"]
    print(f"inbound SMTP -> committed message, new threads : {s['new_thread_msgs_per_s']:>8} msgs/s")
    print(f"inbound SMTP -> committed message, replies     : {s['reply_msgs_per_s']:>8} msgs/s")
    print(f"stored {s['stored']} of {s['sent']}, {s['threaded_by_headers']} threaded by headers")
    print(f"errors {s['errors']}")
    print(f"parse 1 MB HTML mail: p50 {h['p50_ms']} ms, p99 {h['p99_ms']} ms ({h['runs']} runs)")
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
