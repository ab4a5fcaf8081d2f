"""What the browser tests share: Debian's headless Chromium, its flags, and the screenshot rule."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "docs" / "screenshots"
UPDATE_SCREENSHOTS = "ADCUT_UPDATE_SCREENSHOTS"  # =1: copy the screenshot taken into docs/screenshots/


def keep_screenshot(shot: Path, name: str) -> None:
    """The README's pictures are refreshed only when asked: a test run never modifies tracked files."""
    if os.environ.get(UPDATE_SCREENSHOTS) == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOTS / name)
