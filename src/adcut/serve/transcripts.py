"""Upstream transcripts (``podcast:transcript``) moved to the ad-free audio's timeline.

WebVTT, SRT and Podcasting 2.0 JSON transcripts have times: each cue is moved to where its audio
lands in the cut, and a cue that lay mostly inside removed audio (an ad read) is dropped.
Everything else in the file is kept as upstream wrote it (the WebVTT header, ``NOTE`` and ``STYLE``
blocks, cue identifiers and settings, the JSON's other fields). Transcripts without times (HTML,
plain text) cannot be moved and are not served.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from adcut.media.timeline import retime as _move

Span = tuple[float, float]

FORMATS = ("vtt", "srt", "json")
CONTENT_TYPES = {"vtt": "text/vtt", "srt": "application/x-subrip", "json": "application/json"}
_TYPES = {
    "text/vtt": "vtt",
    "application/x-subrip": "srt",
    "application/srt": "srt",
    "text/srt": "srt",
    "application/x-srt": "srt",
    "text/x-srt": "srt",
    "application/json": "json",
}
MAX_BYTES = 5 * 1024 * 1024
KEEP_FRACTION = 0.5  # a cue is kept when at least this much of it is kept audio

_TIME = r"(?:(\d+):)?(\d{1,2}):(\d{2})[.,](\d{1,3})"
_TIMING = re.compile(rf"^\s*{_TIME}\s*-->\s*{_TIME}(.*)$")
_INLINE = re.compile(r"<(?:(\d+):)?(\d{2}):(\d{2})\.(\d{3})>")  # WebVTT karaoke timestamps inside a cue


class TranscriptError(ValueError):
    """Not a transcript of the declared format (no cue with times)."""


def transcript_format(content_type: str | None, url: str) -> str | None:
    """ "vtt", "srt" or "json" for a transcript with times (by its declared type, else its URL); None otherwise."""
    declared = (content_type or "").split(";")[0].strip().lower()
    if declared in _TYPES:
        return _TYPES[declared]
    if declared:
        return None  # text/html, text/plain: no times
    suffix = Path(urlsplit(url).path).suffix.lower().lstrip(".")
    return suffix if suffix in FORMATS else None


def file_name(audio_name: str, fmt: str) -> str:
    """The re-timed transcript of the ad-free file ``audio_name`` in the data folder's audio folder."""
    return f"{audio_name}.transcript.{fmt}"


def _seconds(hours: str | None, minutes: str, seconds: str, fraction: str) -> float:
    return int(hours or 0) * 3600 + int(minutes) * 60 + int(seconds) + int(fraction.ljust(3, "0")) / 1000


def _stamp(t: float, separator: str) -> str:
    total = int(round(max(0.0, t) * 1000))
    return (
        f"{total // 3_600_000:02d}:{total // 60_000 % 60:02d}:{total // 1000 % 60:02d}"
        f"{separator}{total % 1000:03d}"
    )


def _kept(start: float, end: float, spans: Sequence[Span]) -> bool:
    """Whether enough of the cue ``[start, end]`` is kept audio to keep the cue."""
    length = end - start
    kept = sum(max(0.0, min(end, b) - max(start, a)) for a, b in spans)
    if length <= 0:
        return any(a <= start < b for a, b in spans)
    return kept >= KEEP_FRACTION * length


def _blocks(text: str) -> list[list[str]]:
    blocks, current = [], []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.strip():
            current.append(line)
        elif current:
            blocks.append(current)
            current = []
    if current:
        blocks.append(current)
    return blocks


def _retime_cues(text: str, spans: Sequence[Span], separator: str, vtt: bool) -> str:
    out: list[str] = []
    cues = 0
    for block in _blocks(text.lstrip("\ufeff")):
        at = next((n for n, line in enumerate(block[:2]) if "-->" in line), None)
        match = _TIMING.match(block[at]) if at is not None else None
        if at is None or match is None:  # the WebVTT header, NOTE, STYLE and REGION blocks: kept as they are
            if vtt:
                out.append("\n".join(block))
            continue
        start, end = _seconds(*match.groups()[0:4]), _seconds(*match.groups()[4:8])
        if not _kept(start, end, spans):
            continue
        cues += 1
        timing = f"{_stamp(_move(start, spans), separator)} --> {_stamp(_move(end, spans), separator)}{match.group(9)}"
        body = block[at + 1 :]
        if vtt:
            body = [
                _INLINE.sub(lambda m: f"<{_stamp(_move(_seconds(*m.groups()), spans), '.')}>", line)
                for line in body
            ]
            out.append("\n".join([*block[:at], timing, *body]))
        else:
            out.append("\n".join([str(cues), timing, *body]))
    if vtt and (not out or not out[0].startswith("WEBVTT")):
        raise TranscriptError("not a WebVTT file (no WEBVTT header)")
    return "\n\n".join(out) + "\n"


def retime_vtt(text: str, spans: Sequence[Span]) -> str:
    return _retime_cues(text, spans, ".", vtt=True)


def retime_srt(text: str, spans: Sequence[Span]) -> str:
    if not any("-->" in line for block in _blocks(text) for line in block[:2]):
        raise TranscriptError("not an SRT file (no cue with times)")
    return _retime_cues(text, spans, ",", vtt=False)


def retime_json(text: str, spans: Sequence[Span]) -> str:
    """A Podcasting 2.0 JSON transcript (``segments`` with ``startTime`` and ``endTime``), every field kept."""
    try:
        data = json.loads(text)
    except ValueError as error:
        raise TranscriptError(f"not JSON ({error})") from None
    segments = data.get("segments") if isinstance(data, dict) else None
    if not isinstance(segments, list):
        raise TranscriptError("not a JSON transcript (no segments)")
    kept = []
    for segment in segments:
        if not isinstance(segment, dict) or not isinstance(segment.get("startTime"), (int, float)):
            continue
        start = float(segment["startTime"])
        end = float(segment["endTime"]) if isinstance(segment.get("endTime"), (int, float)) else start
        if _kept(start, end, spans):
            moved = dict(segment, startTime=round(_move(start, spans), 3))
            if "endTime" in segment:
                moved["endTime"] = round(_move(end, spans), 3)
            kept.append(moved)
    return json.dumps({**data, "segments": kept}, ensure_ascii=False, indent=1)


RETIME = {"vtt": retime_vtt, "srt": retime_srt, "json": retime_json}


def retime(fmt: str, body: bytes, spans: Sequence[Span]) -> str:
    """The transcript ``body`` (of format ``fmt``) on the cut's timeline; TranscriptError if it is not one."""
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError:
        text = body.decode("latin-1")
    return RETIME[fmt](text, spans)
