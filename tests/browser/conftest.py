"""Browser tests: a real ``chatserver serve`` process and Debian's Chromium, driven by Playwright's sync API.

Without /usr/bin/chromium (or the playwright package) these tests skip with the reason; under CI (CI=true)
that is a failure instead. Playwright never downloads a browser here: it always launches the system one.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

    from tests.translation.fakes import LibreTranslateFake

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "browser-test-password"
IN_CI = os.environ.get("CI", "").lower() == "true"
STARTUP_TIMEOUT_S = 30.0


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason}; CI must provide it", pytrace=False)
    pytest.skip(reason)


class Server:
    """A ``chatserver serve`` process on a fixed free port with its own data directory (embedded SQLite,
    in-process bus). :meth:`stop` and :meth:`start` restart it on the same port and data. ``env`` adds
    settings (``CHATSERVER_*``) on top of the defaults."""

    def __init__(self, workdir: Path, env: Mapping[str, str] | None = None) -> None:
        self.workdir = workdir
        self.extra_env = dict(env or {})
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.email = ADMIN_EMAIL
        self.password = ADMIN_PASSWORD
        self.inbox_key = ""
        self.log_path = workdir / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def demo(self) -> str:
        return f"{self.url}/demo"

    @property
    def console(self) -> str:
        return f"{self.url}/console/"

    def start(self) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("CHATSERVER_") and k not in ("DATABASE_URL", "REDIS_URL", "PORT")
        }
        env.update(
            CHATSERVER_DATA_DIR=str(self.workdir / "data"),
            CHATSERVER_ADMIN_EMAIL=ADMIN_EMAIL,
            CHATSERVER_ADMIN_PASSWORD=ADMIN_PASSWORD,
            CHATSERVER_LOG_LEVEL="warning",
            CHATSERVER_ROUTING="manual",  # these tests take conversations by hand; routing has its own
        )
        env.update(self.extra_env)
        with self.log_path.open("ab") as log:
            self._proc = subprocess.Popen(
                [*_command(), "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if self._proc.poll() is not None:
                output = self.log_path.read_text()
                pytest.fail(f"chatserver exited with {self._proc.returncode}:\n{output}", pytrace=False)
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1.0).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                output = self.log_path.read_text()
                pytest.fail(f"chatserver did not answer /healthz:\n{output}", pytrace=False)
            time.sleep(0.1)  # polling the process's readiness, not the UI
        if not self.inbox_key:
            found = re.search(r"Inbox key\s*:\s*(\S+)", self.log_path.read_text())
            assert found, self.log_path.read_text()
            self.inbox_key = found.group(1)

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _command() -> list[str]:
    script = Path(sys.executable).with_name("chatserver")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "chatserver.cli"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    instance = Server(tmp_path_factory.mktemp("chatserver"))
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        _unavailable(f"{CHROMIUM} is missing (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (pip install playwright)")
    with sync_playwright() as pw:
        instance = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@dataclass
class PageProblems:
    """JavaScript errors and dialogs (alert/confirm) seen on the test's pages."""

    errors: list[str]
    dialogs: list[str]


@pytest.fixture
def problems() -> PageProblems:
    return PageProblems([], [])


@pytest.fixture
def new_page(browser: Browser, problems: PageProblems) -> Iterator[Callable[..., Page]]:
    """Open a page in a fresh browser context (its own cookies and localStorage); closed after the test.
    Uncaught JavaScript errors fail the test."""
    contexts: list[Any] = []

    def open_page(**context_options: Any) -> Page:
        context = browser.new_context(**context_options)
        context.set_default_timeout(10_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: problems.errors.append(str(exc)))

        def on_dialog(dialog: Any) -> None:
            problems.dialogs.append(f"{dialog.type}: {dialog.message}")
            dialog.dismiss()

        page.on("dialog", on_dialog)
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not problems.errors, f"JavaScript errors on the page: {problems.errors}"


# -- translation: a fake LibreTranslate (tests/translation/fakes.py) and a server that uses it ---------------


class ThreadedFake:
    """Serve one of tests/translation's fake providers (an async uvicorn app) from a background thread with
    its own event loop, so that sync Playwright tests can use it. Set ``fake.mode`` from the test."""

    def __init__(self, fake: Any) -> None:
        self.fake = fake
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=lambda: asyncio.run(self._main()), name="fake-provider", daemon=True
        )

    async def _main(self) -> None:
        from tests.translation.fakes import serve

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            async with serve(self.fake):
                self._ready.set()
                await self._stop.wait()
        except BaseException as exc:  # surfaced to the test thread by start()
            self._error = exc
        finally:
            self._ready.set()

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(STARTUP_TIMEOUT_S) or self._error is not None:
            pytest.fail(f"the fake translation provider did not start: {self._error!r}", pytrace=False)

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        self._thread.join(timeout=10)


@pytest.fixture(scope="module")
def libretranslate() -> Iterator[LibreTranslateFake]:
    """A fake LibreTranslate on 127.0.0.1 (``fake.url``). It translates by its phrase table, else as
    ``"[<target>] <text>"``; ``fake.mode = "server_error"`` makes it fail, ``"ok"`` recovers."""
    from tests.translation.fakes import LibreTranslateFake

    runner = ThreadedFake(LibreTranslateFake())
    runner.start()
    try:
        yield runner.fake
    finally:
        runner.stop()


@pytest.fixture(scope="module")
def translating_server(
    tmp_path_factory: pytest.TempPathFactory, libretranslate: LibreTranslateFake
) -> Iterator[Server]:
    """A server that translates with ``libretranslate`` (languages de, es, en; quick retries)."""
    instance = Server(
        tmp_path_factory.mktemp("chatserver-translating"),
        env={
            "CHATSERVER_TRANSLATION_PROVIDER": "libretranslate",
            "CHATSERVER_TRANSLATION_URL": libretranslate.url,
            "CHATSERVER_LANGUAGES": "de,es,en",
            "CHATSERVER_TRANSLATION_RETRY_S": "0.3",
        },
    )
    try:
        instance.start()
        yield instance
    finally:
        instance.stop()
