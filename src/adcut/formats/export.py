"""Writers for detected segments: label tracks, JSON, chapter files and CUE sheets, one class each.

Names written next to the episode (or into ``-o OUTDIR``), for an episode ``show.mp3``:

    audacity    show.adcut.txt        Audacity label track, every segment, class as the label
    json        show.adcut.json       segments + confidence, model id, settings, per-second probabilities
    podcast     show.chapters.json    Podcasting 2.0 JSON chapters (version 1.2.0)
    ffmetadata  show.ffmeta.txt       FFmpeg FFMETADATA1 chapters (``ffmpeg -i show.mp3 -i show.ffmeta.txt -map_chapters 1``)
    cue         show.cue              CUE sheet, one track per segment
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from adcut.core.files import atomic_write_text
from adcut.errors import AdcutError
from adcut.formats.labels import format_audacity

log = logging.getLogger(__name__)

DEFAULT_FORMATS = ("audacity", "json")
CUE_FRAMES_PER_SECOND = 75
CUE_MAX_TRACKS = 99


def chapter_title(label: str) -> str:
    return label.replace("_", " ").capitalize()


class Writer:
    """One output format: ``render`` makes the text, ``write`` puts it in place atomically."""

    name = ""
    extension = ""

    def output_path(self, episode: Path, outdir: Path | None = None) -> Path:
        episode = Path(episode)
        return Path(outdir or episode.parent) / f"{episode.stem}{self.extension}"

    def render(self, detection) -> str:
        raise NotImplementedError

    def write(self, detection, path: Path) -> None:
        atomic_write_text(path, self.render(detection))


class AudacityWriter(Writer):
    name = "audacity"
    extension = ".adcut.txt"

    def render(self, detection) -> str:
        return format_audacity(detection.segments)


class JsonWriter(Writer):
    name = "json"
    extension = ".adcut.json"

    def render(self, detection) -> str:
        per_second = detection.per_second()
        data = {
            "file": detection.path.name,
            "duration": round(detection.duration, 3),
            "model": detection.model_id,
            "classes": list(detection.classes),
            "settings": detection.settings,
            "boundaries": [round(t, 3) for t in detection.boundaries],
            "segments": [
                {**seg.to_dict(), "confidence": round(conf, 4)}
                for seg, conf in zip(detection.segments, detection.confidences)
            ],
            # Probability of each class for each second of the episode (index = second).
            "probabilities": {
                "step_seconds": 1.0,
                **{
                    name: [round(float(p), 3) for p in per_second[:, i]]
                    for i, name in enumerate(detection.classes)
                },
            },
        }
        return json.dumps(data, indent=1) + "\n"


class PodcastChaptersWriter(Writer):
    """Podcasting 2.0 JSON chapters: ``version`` and ``chapters`` with ``startTime`` (seconds)."""

    name = "podcast"
    extension = ".chapters.json"

    def render(self, detection) -> str:
        chapters = [
            {
                "startTime": round(seg.start, 3),
                "endTime": round(seg.end, 3),
                "title": chapter_title(seg.label),
            }
            for seg in detection.segments
        ]
        data = {"version": "1.2.0", "fileName": detection.path.name, "chapters": chapters}
        return json.dumps(data, indent=2) + "\n"


def ffmetadata_escape(text: str) -> str:
    """Backslash-escape what FFMETADATA treats specially: ``=``, ``;``, ``#``, ``\\`` and newlines."""
    out = []
    for char in text:
        if char in "=;#\\\n":
            out.append("\\")
        out.append(char)
    return "".join(out)


class FfmetadataWriter(Writer):
    name = "ffmetadata"
    extension = ".ffmeta.txt"

    def render(self, detection) -> str:
        lines = [";FFMETADATA1"]
        for seg in detection.segments:
            lines += [
                "",
                "[CHAPTER]",
                "TIMEBASE=1/1000",
                f"START={round(seg.start * 1000)}",
                f"END={round(seg.end * 1000)}",
                f"title={ffmetadata_escape(chapter_title(seg.label))}",
            ]
        return "\n".join(lines) + "\n"


def cue_time(seconds: float) -> str:
    """``mm:ss:ff`` with 75 frames per second (minutes may exceed 99 for long episodes)."""
    frames = round(seconds * CUE_FRAMES_PER_SECOND)
    minutes, rest = divmod(frames, 60 * CUE_FRAMES_PER_SECOND)
    secs, ff = divmod(rest, CUE_FRAMES_PER_SECOND)
    return f"{minutes:02d}:{secs:02d}:{ff:02d}"


_CUE_FILE_TYPES = {".mp3": "MP3", ".aif": "AIFF", ".aiff": "AIFF"}


def cue_quote(text: str) -> str:
    return '"' + text.replace('"', "'") + '"'


class CueWriter(Writer):
    name = "cue"
    extension = ".cue"

    def render(self, detection) -> str:
        file_type = _CUE_FILE_TYPES.get(detection.path.suffix.lower(), "WAVE")
        segments = detection.segments
        if len(segments) > CUE_MAX_TRACKS:
            log.warning(
                "%s: CUE sheets hold at most %d tracks; the last %d segments are left out",
                detection.path.name,
                CUE_MAX_TRACKS,
                len(segments) - CUE_MAX_TRACKS,
            )
            segments = segments[:CUE_MAX_TRACKS]
        lines = [f"FILE {cue_quote(detection.path.name)} {file_type}"]
        for number, seg in enumerate(segments, start=1):
            lines += [
                f"  TRACK {number:02d} AUDIO",
                f"    TITLE {cue_quote(chapter_title(seg.label))}",
                f"    INDEX 01 {cue_time(seg.start)}",
            ]
        return "\n".join(lines) + "\n"


WRITERS: dict[str, type[Writer]] = {
    cls.name: cls for cls in (AudacityWriter, JsonWriter, PodcastChaptersWriter, FfmetadataWriter, CueWriter)
}


def get_writer(name: str) -> Writer:
    try:
        return WRITERS[name.strip().lower()]()
    except KeyError:
        raise AdcutError(f"unknown output format {name!r} (choose from {', '.join(WRITERS)})") from None


def parse_formats(text: str | None) -> tuple[str, ...]:
    """``"audacity,cue"`` -> ("audacity", "cue"); None -> the defaults; unknown names are an error."""
    if not text:
        return DEFAULT_FORMATS
    names = []
    for part in text.split(","):
        if part.strip():
            name = get_writer(part).name
            if name not in names:
                names.append(name)
    if not names:
        raise AdcutError("--format names no format")
    return tuple(names)
