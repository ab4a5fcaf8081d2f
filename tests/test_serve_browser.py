"""The ``adcut serve`` status page in a real headless Chromium: feeds, episode states and reasons, review, re-cut."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from browser import CHROMIUM, CHROMIUM_ARGS, keep_screenshot

if not CHROMIUM.exists():
    pytest.skip("/usr/bin/chromium is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

sys.path.insert(0, str(Path(__file__).parent))
from adcut.serve.paths import DataDir  # noqa: E402
from adcut.serve.store import Store  # noqa: E402
from test_serve import Server, add_feed, model, settled, upstream, wait_for  # noqa: E402,F401 - fixtures

pytestmark = pytest.mark.browser


def test_status_page_shows_states_and_reasons_and_recuts(upstream, model, tmp_path, capsys):  # noqa: F811
    data = tmp_path / "data"
    add_feed(upstream, model, data, capsys)
    server = Server(data)
    try:
        wait_for(lambda: settled(data))
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 640})
            page.goto(server.status)
            assert page.title() == "adcut serve"
            assert page.locator("h2").all_inner_texts() == ["show"]
            assert page.locator("a code").first.inner_text() == server.url("/feed/show.xml")
            rows = page.locator("tr[id^=episode-]")
            assert rows.count() == 4
            states = [rows.nth(i).locator(".state").inner_text() for i in range(4)]
            assert states == ["done", "done", "failed", "failed"]
            assert "404" in rows.nth(2).locator(".reason").inner_text()
            assert "not audio" in rows.nth(3).locator(".reason").inner_text()
            # The done episode's title links to its ad-free audio.
            href = rows.nth(0).locator("a").get_attribute("href")
            assert href.startswith("/audio/") and href.endswith(f"?token={server.token}")
            shot = tmp_path / "serve-status.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            keep_screenshot(shot, "serve-status.png")
            # Review opens the labeller on the episode in a new tab, pre-filled with what was found.
            with page.expect_popup() as popup:
                rows.nth(0).get_by_role("button", name="review").click()
            labeller = popup.value
            labeller.wait_for_load_state()
            assert labeller.url.startswith("http://127.0.0.1:") and not labeller.url.startswith(server.base)
            labeller.close()
            # Re-cut the first episode: the page comes back and the episode gets a new revision.
            episode_id = int(rows.nth(0).get_attribute("id").split("-")[1])
            rows.nth(0).get_by_role("button", name="re-cut").click()
            page.wait_for_load_state()
            assert page.url == server.status
            wait_for(lambda: Store(DataDir(data).db).episode(episode_id).revision == 2 and settled(data))
            page.reload()
            assert page.locator(f"#episode-{episode_id} .state").inner_text() == "done"
            browser.close()
    finally:
        assert server.stop() == 0
