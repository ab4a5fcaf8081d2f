"""Time in seconds: the ``Seconds`` unit, and reading and writing ``[h:]mm:ss`` times."""

from __future__ import annotations

import math
import re

Seconds = float


# Two boundaries closer than this are the same time (label files are written with ms precision).
TIME_EPSILON: Seconds = 1e-3


_CLOCK = re.compile(r"^(?:(\d+):)?(\d{1,2}):(\d{1,2}(?:\.\d+)?)$")


def parse_time(text: str) -> Seconds:
    """Seconds from ``90``, ``90.5``, ``1:30``, ``01:02:03.5``; ValueError otherwise."""
    text = text.strip()
    match = _CLOCK.match(text)
    if match:
        hours, minutes, seconds = match.groups()
        if int(minutes) >= 60 and hours is not None or float(seconds) >= 60:
            raise ValueError(f"not a time: {text!r}")
        return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
    value = float(text)  # raises ValueError for junk
    if not math.isfinite(value):
        raise ValueError(f"not a time: {text!r}")
    return value


def format_time(seconds: Seconds, decimals: int = 0) -> str:
    """``h:mm:ss`` (``decimals`` digits after the second), e.g. ``1:02:03.5``; hours always shown."""
    scale = 10**decimals
    total = round(seconds * scale)
    whole, frac = divmod(total, scale)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{hours}:{minutes:02d}:{secs:02d}"
    if decimals:
        text += f".{frac:0{decimals}d}"
    return text
