"""Real-browser test support: Debian's Chromium driven by Playwright, servers as subprocesses.

Playwright's own browser download cannot work here (a closed network), so the tests launch the
Chromium found on PATH (Debian's ``chromium`` package; ``make chromium`` installs it and
``make test`` depends on that). Chromium is not a Python process, so the socket guard of
``conftest.py`` does not reach it: ``CHROMIUM_ARGS`` turn off everything it would fetch on its
own (component updates, sync, metrics, QUIC), and the tests only ever navigate to loopback.

The studio and ``adaptune serve`` run as the user starts them: ``python -m adaptune ...`` in a
subprocess on 127.0.0.1 and a free port, the socket guard installed in them through
``PYTHONPATH``. Each is stopped by its own pid at the end, then what it started and left running
(a studio's job), by theirs.

The fixtures (``chromium``, ``page``, ``studio``) are imported into ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psutil
import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
COMPILED = REPO / "compiled" / "adapter_tuning.yaml"

CHROMIUM_NAMES = ("chromium", "chromium-browser")
CHROMIUM_ARGS = (
    "--no-sandbox",  # root in CI containers: the sandbox needs user namespaces
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-domain-reliability",
    "--disable-breakpad",
    "--metrics-recording-only",
    "--no-pings",
    # Even so it looks up accounts.google.com and update.googleapis.com (seen with strace):
    # every host name but the loopback address fails without a DNS query.
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
)
VIEWPORT = {"width": 1280, "height": 900}
SCREENSHOTS_ENV = "ADAPTUNE_SCREENSHOTS"

# What a user operates: every such control needs an accessible name and a Tab stop.
CONTROLS = "input:not([type=hidden]), select, textarea, button"


def chromium_path() -> str | None:
    """The Chromium on PATH (Debian's ``chromium``), or None."""
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def free_port() -> int:
    """A loopback port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A server process the test started, and where it answers.

    Attributes:
        url: ``http://127.0.0.1:PORT`` (no trailing slash).
        process: The process (the test ends it by this pid only).
        log: Its stdout and stderr.
    """

    url: str
    process: subprocess.Popen
    log: Path

    def log_tail(self, lines: int = 40) -> str:
        """The last lines of its log, for failure messages."""
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


@contextmanager
def server_process(
    args: Sequence[str],
    port: int,
    log: Path,
    ready_path: str,
    cwd: Path,
    timeout: float = 120.0,
) -> Iterator[Server]:
    """Start ``args`` (a server listening on 127.0.0.1:``port``), wait for it, stop it after.

    Ready when ``GET ready_path`` answers below 500. At the end the process gets SIGTERM, then
    SIGKILL after 20 s; then so do the processes it started that outlived it (the studio's job
    runs in its own session), each by the pid seen before the stop.
    """
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        process = subprocess.Popen(
            list(args), stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=cwd
        )
    server = Server(url, process, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                pytest.fail(f"{args[2:4]} exited {process.returncode}:\n{server.log_tail()}")
            try:
                if httpx.get(url + ready_path, timeout=2).status_code < 500:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"{args[2:4]} did not answer in {timeout:.0f} s:\n{server.log_tail()}")
            time.sleep(0.2)
        yield server
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """End the process, then what it started that outlived it (a studio's job), each by pid."""
    try:
        started = psutil.Process(process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        started = []
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    left = [child for child in started if child.is_running()]
    for child in left:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.terminate()
    _, alive = psutil.wait_procs(left, timeout=20)
    for child in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def adaptune_command(*args: str) -> list[str]:
    """``python -m adaptune ARGS`` with this interpreter."""
    return [sys.executable, "-m", "adaptune", *args]


@dataclass
class Studio:
    """A running ``adaptune studio`` and the directories it was started with."""

    server: Server
    runs_dir: Path
    registry_dir: Path

    @property
    def url(self) -> str:
        """Its base URL."""
        return self.server.url


@contextmanager
def studio_process(root: Path, token: str | None = None) -> Iterator[Studio]:
    """``adaptune studio`` on loopback with ``root/runs``, ``root/registry``, maybe a token."""
    runs, registry = root / "runs", root / "registry"
    runs.mkdir(parents=True, exist_ok=True)
    registry.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = adaptune_command(
        "studio",
        "--runs-dir",
        str(runs),
        "--registry-dir",
        str(registry),
        "--compiled",
        str(COMPILED),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *(["--token", token] if token else []),
    )
    with server_process(command, port, root / "studio.log", "/static/studio.css", root) as server:
        yield Studio(server, runs, registry)


@contextmanager
def serve_process(registry: Path, root: Path) -> Iterator[Server]:
    """``adaptune serve`` on loopback for ``registry``."""
    port = free_port()
    command = adaptune_command(
        "serve",
        "--registry-dir",
        str(registry),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--torch-threads",
        "1",
        "--log-level",
        "warning",
    )
    with server_process(command, port, root / "serve.log", "/health", root) as server:
        yield server


def screenshot_dir(tmp_path: Path) -> Path:
    """Where the tests save page screenshots: ``$ADAPTUNE_SCREENSHOTS``, else ``tmp_path``."""
    chosen = os.environ.get(SCREENSHOTS_ENV)
    directory = Path(chosen) if chosen else tmp_path / "screenshots"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def screenshot(page: Page, directory: Path, name: str) -> Path:
    """The whole page as ``directory/name.png`` (no focus ring left by the keyboard checks)."""
    path = directory / f"{name}.png"
    page.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0); }")
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 1000, f"{path}: an empty screenshot"
    return path


# -- accessibility -------------------------------------------------------------------------

_PROBE = "data-a11y-probe"

_MARK_CONTROLS = """([selector, probe]) => {
  const marked = [];
  document.querySelectorAll(selector).forEach((el, i) => {
    if (!el.checkVisibility()) return;
    const key = el.type === "radio" && el.name ? "radio:" + el.name : "control:" + i;
    el.setAttribute(probe, key);
    marked.push({key, html: el.outerHTML.slice(0, 160), disabled: el.disabled});
  });
  return marked;
}"""


def mark_controls(page: Page) -> list[dict[str, Any]]:
    """Tag each visible control with a probe attribute; their keys, markup and disabled flag."""
    return page.evaluate(_MARK_CONTROLS, [CONTROLS, _PROBE])


def accessible_names(page: Page) -> dict[str, str]:
    """Chromium's own accessible name of each visible control, by its outer HTML.

    Computed by the browser's accessibility tree (``Accessibility.getPartialAXTree`` over the
    DevTools protocol): a ``<label for>``, ``aria-label``, ``aria-labelledby``, a button's text.
    """
    controls = mark_controls(page)
    session = page.context.new_cdp_session(page)
    try:
        session.send("Accessibility.enable")
        root = session.send("DOM.getDocument", {"depth": 0})["root"]["nodeId"]
        node_ids = session.send("DOM.querySelectorAll", {"nodeId": root, "selector": f"[{_PROBE}]"})
        names: dict[str, str] = {}
        for node_id, control in zip(node_ids["nodeIds"], controls, strict=True):
            tree = session.send(
                "Accessibility.getPartialAXTree", {"nodeId": node_id, "fetchRelatives": False}
            )
            node = tree["nodes"][0] if tree["nodes"] else {}
            names[control["html"]] = str(node.get("name", {}).get("value", "")).strip()
        return names
    finally:
        session.detach()


def assert_controls_named(page: Page) -> None:
    """Every visible input, select, textarea and button has an accessible name."""
    names = accessible_names(page)
    unnamed = [html for html, name in names.items() if not name]
    assert not unnamed, f"{page.url}: controls without an accessible name: {unnamed}"


# Focus a programmatic-only element before everything, so the next Tab is the page's first stop.
_START_AT_TOP = """() => {
  const start = document.createElement("span");
  start.id = "tab-start-probe";
  start.tabIndex = -1;
  document.body.prepend(start);
  start.focus();
}"""
_FOCUSED = """(probe) => {
  const el = document.activeElement;
  return el ? (el.getAttribute(probe) || el.tagName.toLowerCase()) : "none";
}"""


def tab_stops(page: Page, presses: int) -> list[str]:
    """The probe keys (or tag names) focused over ``presses`` Tab presses from the top."""
    page.evaluate(_START_AT_TOP)
    seen = []
    for _ in range(presses):
        page.keyboard.press("Tab")
        seen.append(page.evaluate(_FOCUSED, _PROBE))
    page.evaluate("() => document.getElementById('tab-start-probe')?.remove()")
    return seen


def assert_keyboard_reachable(page: Page) -> None:
    """Pressing Tab from the top of the page reaches every enabled visible control."""
    controls = mark_controls(page)
    wanted = {c["key"]: c["html"] for c in controls if not c["disabled"]}
    links = page.locator("a[href]").count()
    stops = tab_stops(page, len(controls) + links + 5)
    missed = [html for key, html in wanted.items() if key not in stops]
    assert not missed, f"{page.url}: controls Tab never reaches: {missed}"


def assert_accessible(page: Page) -> None:
    """Both checks above: every control named and reachable by keyboard."""
    assert_controls_named(page)
    assert_keyboard_reachable(page)


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """Debian's Chromium, headless, launched through Playwright (one per test module)."""
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium on PATH: `make chromium` installs Debian's (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=path, headless=True, args=list(CHROMIUM_ARGS)
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(chromium: Browser) -> Iterator[Page]:
    """A fresh page (own context, 1280x900); fails the test on an uncaught JavaScript error."""
    context = chromium.new_context(viewport=VIEWPORT)
    context.set_default_timeout(15_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[Studio]:
    """``adaptune studio`` started as a user starts it, on fresh runs and registry dirs."""
    with studio_process(tmp_path / "studio") as running:
        yield running
