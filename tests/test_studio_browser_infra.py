"""The real-browser setup itself: Debian's Chromium through Playwright, against the studio.

These run on the studio's skeleton (stylesheet, layout, error page, the redirect home); the
pages' own browser tests are in test_studio_browser.py.
"""

from __future__ import annotations

import ipaddress

import psutil
import pytest
from browser import (
    CHROMIUM_NAMES,
    assert_controls_named,
    assert_keyboard_reachable,
    screenshot,
    studio_process,
)

pytestmark = pytest.mark.browser


def _chromium_processes() -> list[psutil.Process]:
    """The Chromium processes this test process started (through Playwright's driver)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if any(name in child.name() for name in CHROMIUM_NAMES):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def _remote_addresses(processes: list[psutil.Process]) -> set[str]:
    addresses = set()
    for process in processes:
        try:
            for connection in process.net_connections(kind="inet"):
                if connection.raddr:
                    addresses.add(connection.raddr.ip)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return addresses


def test_home_redirects_to_runs_and_the_stylesheet_is_served(studio, page):
    response = page.goto(studio.url + "/")
    assert response is not None
    assert page.url == studio.url + "/runs"
    assert response.request.redirected_from is not None
    assert response.request.redirected_from.url == studio.url + "/"
    css = page.request.get(studio.url + "/static/studio.css")
    assert css.status == 200
    assert css.headers["content-type"].startswith("text/css")
    assert ".skip" in css.text()


def test_error_page_has_the_nav_and_the_skip_link_is_the_first_tab_stop(tmp_path, page):
    with studio_process(tmp_path / "studio", token="browser-test-token") as studio:
        response = page.goto(studio.url + "/")  # no token yet: the error page
        assert response is not None and response.status == 401
        assert page.title() == "Error · adaptune studio"
        assert page.get_by_role("heading", level=1).inner_text() == "Error"
        assert "missing or wrong token" in page.get_by_role("alert").inner_text()
        nav = page.get_by_role("navigation", name="Studio")
        links = [
            nav.get_by_role("link", name=label)
            for label in ("New tuning job", "Runs", "Models", "Try it", "Lineage")
        ]
        assert [link.get_attribute("href") for link in links] == [
            "/jobs/new",
            "/runs",
            "/models",
            "/try",
            "/lineage",
        ]
        assert not [link for link in links if link.get_attribute("aria-current")]

        # The stylesheet applies: the skip link sits off-screen until it has the focus.
        skip = page.get_by_role("link", name="Skip to content")
        box = skip.bounding_box()
        assert box is not None and box["x"] < 0
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.textContent") == "Skip to content"
        assert page.evaluate("document.activeElement.getAttribute('href')") == "#main"
        focused = skip.bounding_box()
        assert focused is not None and focused["x"] >= 0
        page.keyboard.press("Enter")
        assert page.url.endswith("#main")
        screenshot(page, tmp_path, "error")

        # Logging in with the token sets the cookie; the next page is past the token check.
        page.goto(studio.url + "/login?token=browser-test-token")
        assert page.url == studio.url + "/runs"
        assert any(c["name"] == "adaptune_token" for c in page.context.cookies())
        assert page.request.get(studio.url + "/runs").status != 401

        # Chromium talks only to the loopback server (checked now; the flags keep it so).
        processes = _chromium_processes()
        assert processes, "found no Chromium process under this test"
        remote = _remote_addresses(processes)
        assert all(ipaddress.ip_address(ip).is_loopback for ip in remote), remote


def test_the_accessibility_checks_catch_an_unnamed_or_unreachable_control(page):
    page.set_content(
        """<!doctype html><html lang="en"><body><main>
        <form>
          <label for="name">Model name</label><input id="name" name="name">
          <input name="unlabelled">
          <select aria-label="Method"><option>lora</option></select>
          <textarea aria-labelledby="p-label"></textarea><span id="p-label">Prompt</span>
          <input type="radio" name="pick" value="a" aria-label="A">
          <input type="radio" name="pick" value="b" aria-label="B">
          <input type="hidden" name="csrf_token" value="x">
          <button type="submit">Start</button>
          <button type="button" tabindex="-1">Hidden from Tab</button>
          <button type="button" aria-label="Icon only"><svg width="8" height="8"></svg></button>
        </form></main></body></html>"""
    )
    with pytest.raises(AssertionError) as unnamed:
        assert_controls_named(page)
    assert 'name="unlabelled"' in str(unnamed.value)
    assert "Model name" not in str(unnamed.value) and "Start" not in str(unnamed.value)
    with pytest.raises(AssertionError) as unreachable:
        assert_keyboard_reachable(page)
    assert "Hidden from Tab" in str(unreachable.value)
    assert "Icon only" not in str(unreachable.value)

    page.locator("input[name=unlabelled]").evaluate("el => el.setAttribute('aria-label', 'X')")
    page.locator("button[tabindex]").evaluate("el => el.removeAttribute('tabindex')")
    assert_controls_named(page)
    assert_keyboard_reachable(page)
