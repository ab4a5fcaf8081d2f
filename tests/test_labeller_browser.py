"""The labeller page in a real headless Chromium: mark, drag, save with keys; pre-filled labels review."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from adcut.demo.synth import EpisodeSpec
from adcut.formats.labels import read_labels
from browser import CHROMIUM, CHROMIUM_ARGS, keep_screenshot

if not CHROMIUM.exists():
    pytest.skip("/usr/bin/chromium is not installed (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

pytestmark = pytest.mark.browser

# Media autoplays in the tests: the page plays the episode without a click.
LABELLER_ARGS = [*CHROMIUM_ARGS, "--autoplay-policy=no-user-gesture-required"]
# Headless Chromium closes a page without showing the leave prompt, so the page's handler is asked directly.
ASKS_BEFORE_LEAVING = (
    "() => { const e = new Event('beforeunload', {cancelable: true}); "
    "window.dispatchEvent(e); return e.defaultPrevented; }"
)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=LABELLER_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def labeller():
    """``labeller(episode, labels=None)`` -> page URL of a real server on a free loopback port, in a thread."""
    from adcut.labeller.server import bind, make_server, page_url
    from adcut.labeller.session import build_session

    running = []

    def start(episode: Path, labels: Path | None = None) -> str:
        session = build_session(episode, labels)
        sock = bind("127.0.0.1", 0)
        server = make_server(session)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        running.append((server, thread, sock))
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        return page_url(session, sock, "127.0.0.1")

    yield start
    for server, thread, sock in running:
        server.should_exit = True
        thread.join(5)
        sock.close()


def open_page(browser, url: str, width: int = 1400, height: int = 800):
    # The page's CSP forbids eval, which Playwright's string predicates use.
    page = browser.new_page(viewport={"width": width, "height": height}, bypass_csp=True)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.wait_for_function("window.adcut !== undefined")
    page.evaluate("window.adcut.ready")
    page.wait_for_function("window.adcut.state.peaks && window.adcut.state.peaks.complete")
    return page, errors


def test_mark_drag_and_save_with_keys(browser, labeller, make_episode):
    episode, _ = make_episode("show", EpisodeSpec(60.0, ((20.0, 35.0),)), labels=False)
    page, errors = open_page(browser, labeller(episode))
    page.wait_for_function("document.getElementById('audio').readyState >= 1")

    for _ in range(2):  # 0 -> 10 s
        page.keyboard.press("ArrowRight")
    page.keyboard.press("Shift+ArrowRight")  # 11 s
    page.keyboard.press("[")
    for _ in range(2):  # -> 21 s
        page.keyboard.press("ArrowRight")
    page.keyboard.press("]")
    segments = page.evaluate("window.adcut.state.segments.map(s => [s.start, s.end, s.label])")
    assert segments == [[11.0, 21.0, "ad"]]
    assert page.evaluate("window.adcut.state.dirty") is True

    # Drag the end edge from 21 s to 26 s in the zoomed view.
    box = page.locator("#zoom").bounding_box()
    y = box["y"] + box["height"] / 2
    x_from = box["x"] + page.evaluate("window.adcut.timeToX('zoom', 21)")
    x_to = box["x"] + page.evaluate("window.adcut.timeToX('zoom', 26)")
    seconds_per_px = page.evaluate("window.adcut.xToTime('zoom', 1) - window.adcut.xToTime('zoom', 0)")
    page.mouse.move(x_from, y)
    page.mouse.down()
    page.mouse.move((x_from + x_to) / 2, y, steps=3)
    page.mouse.move(x_to, y, steps=3)
    page.mouse.up()

    page.keyboard.press("Control+s")
    page.wait_for_function("window.adcut.state.dirty === false && window.adcut.state.savedCount === 1")
    saved = read_labels(episode.with_suffix(".txt"))
    assert len(saved) == 1 and saved[0].label == "ad"
    assert saved[0].start == pytest.approx(11.0, abs=1e-3)  # keys: exact at the playhead
    assert saved[0].end == pytest.approx(26.0, abs=2 * seconds_per_px + 0.01)  # a drag: a pixel or two
    assert not episode.with_suffix(".txt.bak").exists()  # nothing was there before
    assert page.evaluate(ASKS_BEFORE_LEAVING) is False

    # p / n: jump to the boundaries, each played from a few seconds before it.
    end = saved[0].end
    page.evaluate("window.adcut.seek(40)")
    page.keyboard.press("p")
    assert page.evaluate("window.adcut.state.focusBoundary") == pytest.approx(end, abs=1e-3)
    page.keyboard.press("p")
    assert page.evaluate("window.adcut.state.focusBoundary") == pytest.approx(11.0)
    page.keyboard.press("n")
    assert page.evaluate("window.adcut.state.focusBoundary") == pytest.approx(end, abs=1e-3)
    page.keyboard.press(" ")  # pause
    assert page.evaluate("document.getElementById('audio').paused") is True
    assert end - 3.5 <= page.evaluate("window.adcut.now()") <= end

    # Delete removes the segment under the playhead; leaving with unsaved changes asks first.
    page.evaluate("window.adcut.seek(15)")
    page.keyboard.press("Delete")
    assert page.evaluate("window.adcut.state.segments.length") == 0
    assert page.evaluate("window.adcut.state.dirty") is True
    page.keyboard.press("?")
    assert page.locator("#help").is_visible()
    page.keyboard.press("Escape")
    assert not page.locator("#help").is_visible()
    assert page.evaluate(ASKS_BEFORE_LEAVING) is True
    assert read_labels(episode.with_suffix(".txt")) == saved  # nothing saved without Ctrl+S
    assert errors == []
    page.close()


def test_prefilled_labels_drawn_and_least_confident_first(browser, labeller, make_episode, tmp_path):
    spec = EpisodeSpec(150.0, ((30.0, 55.0), (90.0, 110.0)))
    episode, _ = make_episode("review", spec, labels=False)
    proposal = episode.with_name("review.json")
    proposal.write_text(
        json.dumps(
            {
                "segments": [
                    {"label": "content", "start": 0.0, "end": 30.4, "confidence": 0.97},
                    {"label": "ad", "start": 30.4, "end": 55.0, "confidence": 0.93},
                    {"label": "content", "start": 55.0, "end": 90.0, "confidence": 0.58},
                    {"label": "ad", "start": 90.0, "end": 112.5, "confidence": 0.64},
                    {"label": "content", "start": 112.5, "end": 150.0, "confidence": 0.99},
                ]
            }
        )
    )
    page, errors = open_page(browser, labeller(episode, proposal))

    drawn = page.evaluate("window.adcut.state.segments.map(s => [s.start, s.end, s.label, s.confidence])")
    assert drawn == [[30.4, 55.0, "ad", 0.93], [90.0, 112.5, "ad", 0.64]]
    # The overview is painted in the ad colour inside an ad and not outside it (once it is painted at all:
    # on a busy machine the first frame can come after the segments are in the page's state).
    probe = """() => {
        const canvas = document.getElementById('overview');
        const ctx = canvas.getContext('2d');
        const ratio = window.devicePixelRatio || 1;
        const x = t => Math.round(window.adcut.timeToX('overview', t) * ratio);
        const probe = t => Array.from(ctx.getImageData(x(t), 1, 1, 1).data);
        return {inside: probe(100), outside: probe(70)};
    }"""
    page.wait_for_function(f"() => ({probe})().inside[3] > 0 && ({probe})().outside[3] > 0", timeout=10_000)
    ad_colour = page.evaluate(probe)
    inside, outside = ad_colour["inside"], ad_colour["outside"]
    assert inside[0] > inside[2] + 60  # amber (ad) top band: much more red than blue
    assert not outside[0] > outside[2] + 60

    items = page.eval_on_selector_all(
        "#segments li.segment",
        "els => els.map(e => [e.dataset.label, +e.dataset.start, +e.dataset.confidence])",
    )
    confidences = [c for _, _, c in items]
    assert confidences == sorted(confidences)
    assert items[0] == ["content", 55.0, 0.58] and items[1] == ["ad", 90.0, 0.64]
    assert {(label, start) for label, start, _ in items} >= {("ad", 30.4), ("ad", 90.0)}

    page.evaluate("window.adcut.seek(96)")
    page.wait_for_timeout(150)
    shot = tmp_path / "labeller.png"
    page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    keep_screenshot(shot, "labeller.png")
    assert errors == []
    page.close()
