"""Write an episode with some classes cut out, in its own format, with tags, cover art and re-timed chapters.

``cut_episode`` dispatches by format: a *copy path* (``COPY_PATHS``) copies the kept audio as it is
coded and rebuilds only what must change at each join; a file a copy path cannot handle (it raises
``CopyUnsupported``), a format without one, or ``method="reencode"`` takes the *re-encode path*
(``reencode_episode``), which decodes and re-encodes the whole episode.

The re-encode path's audio is streamed: frames are decoded, kept, dropped or faded by their time, and encoded as
they come, so a 3-hour episode never sits in memory. Fades lie on the kept (content) side of each
cut: not one sample of removed audio survives at an edge.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from adcut.core.files import atomic_write
from adcut.core.segments import Segment
from adcut.core.units import Seconds
from adcut.errors import AudioError, CopyUnsupported, OutputError
from adcut.media.timeline import (
    CutResult,
    NothingKept,
    fade_gain,
    kept_plan,
    kept_spans,
    retime_chapters,
    sample_spans,
)

log = logging.getLogger(__name__)

DEFAULT_FADE_SECONDS: Seconds = 0.03  # long enough to avoid a click, short enough to lose no words
CUT_SUFFIX = ".adcut"


# The copy paths, by the input's suffix: (method name, "module:function"). Each function is called as
# ``fn(path, info, segments, tmp, out_path, remove=..., fade_seconds=...)``, writes the cut file to
# ``tmp`` and returns a CutResult, or raises CopyUnsupported (nothing it wrote is kept).
COPY_PATHS: dict[str, tuple[str, str]] = {}
COPY_PATHS[".mp3"] = ("copy-mp3", "adcut.media.mp3.cut:cut_mp3")  # frames copied, joins rebuilt
COPY_PATHS[".wav"] = ("copy-wav", "adcut.media.wav_splice:cut_wav")  # PCM sample frames, no codec
COPY_PATHS.update(dict.fromkeys((".m4a", ".m4b", ".mp4"), ("copy-aac", "adcut.media.m4a_splice:cut_m4a")))
REENCODE = "reencode"
METHODS = ("auto", REENCODE)  # what callers may ask for: the format's copy path where one fits, or re-encode


def copied_formats() -> list[str]:
    """The suffixes whose kept audio is copied rather than re-encoded (for --help and the README)."""
    return sorted(COPY_PATHS)


# Containers whose FFmpeg muxer takes cover art as an attached-picture stream.
_PICTURE_CONTAINERS = ("mp3", "ipod", "mp4", "flac")


def cut_path(episode: Path, outdir: Path | None = None) -> Path:
    """``<stem>.adcut.<ext>`` next to the episode or in ``outdir``."""
    episode = Path(episode)
    return Path(outdir or episode.parent) / f"{episode.stem}{CUT_SUFFIX}{episode.suffix}"


class GainPlan:
    """Per-sample gain over the original timeline: 1 inside kept spans, ramps at their cut edges, 0 elsewhere."""

    def __init__(self, spans, sample_rate: int, duration: Seconds, fade_seconds: Seconds):
        self.spans = sample_spans(spans, sample_rate, duration, fade_seconds)
        self._next = 0

    def apply(self, samples: np.ndarray, position: int) -> list[np.ndarray]:
        """The kept, faded pieces of a frame that starts at sample ``position``."""
        n = samples.shape[1]
        pieces = []
        while self._next < len(self.spans) and self.spans[self._next][1] <= position:
            self._next += 1
        index = self._next
        while index < len(self.spans) and self.spans[index][0] < position + n:
            a, b, fade_in, fade_out = self.spans[index]
            lo, hi = max(a, position), min(b, position + n)
            if hi > lo:
                piece = samples[:, lo - position : hi - position].copy()
                pieces.append(piece * fade_gain(lo, hi, a, b, fade_in, fade_out))
            index += 1
        return pieces


def _output_codec(info, suffix: str) -> tuple[str, str, str]:
    """(encoder, sample format, container format) that reproduce the input's format."""
    from adcut.media.encode import _CODEC_ALIASES, _CODEC_BY_SUFFIX, _ENCODERS, _FORMAT_BY_SUFFIX

    codec = _CODEC_ALIASES.get(info.codec, info.codec)
    if codec not in _ENCODERS:
        codec = _CODEC_BY_SUFFIX.get(suffix, codec)
    if codec not in _ENCODERS or suffix not in _FORMAT_BY_SUFFIX:
        raise OutputError(
            f"{info.path}: cannot write a cut file in this format ({suffix or 'no suffix'}, codec {info.codec})"
        )
    encoder, sample_format = _ENCODERS[codec]
    return encoder, sample_format, _FORMAT_BY_SUFFIX[suffix]


def cut_episode(
    path: Path,
    segments: Sequence[Segment],
    out_path: Path,
    *,
    remove: Sequence[str] = ("ad",),
    fade_seconds: Seconds = DEFAULT_FADE_SECONDS,
    method: str = "auto",
) -> CutResult:
    """Write ``path`` without the ``remove`` classes to ``out_path`` (temporary name, then rename).

    ``method="auto"`` uses the format's copy path where there is one and it can handle the file, else
    (with a one-line warning when a copy path gave up) the re-encode path; ``"reencode"`` forces the latter.
    """
    import importlib

    from adcut.media.decode import probe

    if method not in METHODS:
        raise OutputError(f"unknown cut method {method!r} (choose from {', '.join(METHODS)})")
    path, out_path = Path(path), Path(out_path)
    if out_path.resolve() == path.resolve():
        raise OutputError(f"{out_path}: refusing to overwrite the input episode")
    info = probe(path)
    if not kept_spans(segments, remove, max([s.end for s in segments] + [info.duration or 0.0])):
        raise NothingKept(f"{path}: every segment is {'/'.join(remove)}; no cut file written")
    copy = COPY_PATHS.get(path.suffix.lower()) if method == "auto" else None
    if copy is not None:
        name, target = copy
        module_name, function_name = target.split(":")
        function = getattr(importlib.import_module(module_name), function_name)
        try:
            with atomic_write(out_path) as tmp:
                result = function(
                    path, info, segments, tmp, out_path, remove=remove, fade_seconds=fade_seconds
                )
            return result
        except CopyUnsupported as error:
            log.warning("%s: re-encoding the whole episode instead of copying (%s)", path.name, error)
        except (AudioError, OutputError):
            raise
        except Exception as error:  # noqa: BLE001 - a copy path's failure must never cost the cut itself
            log.debug("copy path failed", exc_info=True)
            first = (str(error).strip().splitlines() or [""])[0][:200]
            log.warning(
                "%s: re-encoding the whole episode instead of copying (%s: %s)",
                path.name,
                type(error).__name__,
                first,
            )
    return reencode_episode(path, info, segments, out_path, remove=remove, fade_seconds=fade_seconds)


def reencode_episode(
    path: Path,
    info,
    segments: Sequence[Segment],
    out_path: Path,
    *,
    remove: Sequence[str] = ("ad",),
    fade_seconds: Seconds = DEFAULT_FADE_SECONDS,
) -> CutResult:
    """The re-encode path: decode the whole episode, drop and fade by time, encode it again in its own format."""
    encoder, sample_format, container_format = _output_codec(info, path.suffix.lower())
    with atomic_write(out_path) as tmp:
        return _write_cut(
            path,
            info,
            segments,
            tmp,
            out_path,
            remove,
            fade_seconds,
            encoder,
            sample_format,
            container_format,
        )


def _write_cut(
    path, info, segments, tmp, out_path, remove, fade_seconds, encoder, sample_format, container_format
) -> CutResult:
    import av

    from adcut.media.decode import _open, _reason, frame_to_float
    from adcut.media.encode import StreamEncoder, copy_cover_art, open_audio_stream

    source = _open(path)
    try:
        audio_in = source.streams.audio[0]
        sample_rate = info.sample_rate
        # The container's declared duration, else the last segment's end, bounds the timeline.
        duration, spans = kept_plan(info, segments, remove)
        plan = GainPlan(spans, sample_rate, duration, fade_seconds)
        pictures = [s for s in source.streams.video if s.disposition & av.stream.Disposition.attached_pic]
        if pictures and container_format not in _PICTURE_CONTAINERS:
            # Ogg keeps cover art inside a comment, not as a picture stream: FFmpeg's Ogg muxer
            # refuses the stream outright, which would fail the whole cut.
            log.warning(
                "%s: cover art not copied (the %s container cannot hold it as a stream)",
                path.name,
                container_format,
            )
            pictures = []

        muxer_options = {}
        if pictures and container_format == "ipod":
            # PyAV refuses a JPEG stream for FFmpeg's ipod (.m4a) muxer; its mp4 muxer writes the same
            # file, cover included, once told to use the .m4a brand.
            container_format, muxer_options = "mp4", {"brand": "M4A "}
        out = av.open(str(tmp), mode="w", format=container_format, options=muxer_options)
        try:
            for key, value in source.metadata.items():
                if key.lower() not in ("encoder",):
                    out.metadata[key] = value
            layout = audio_in.codec_context.layout.name
            stream = open_audio_stream(
                out, encoder, sample_rate, layout, info.bit_rate, metadata=audio_in.metadata
            )
            picture_streams = copy_cover_art(out, pictures, path.name)
            chapters = retime_chapters(source.chapters(), spans, duration)
            if chapters:
                out.set_chapters(cast(Any, chapters))  # PyAV types them as its Chapter dict

            encoder_stream = StreamEncoder(out, stream, sample_format, layout, sample_rate)
            position = 0
            decoded = 0
            kept = 0
            try:
                for packet in source.demux(audio_in, *pictures):
                    if packet.stream.index in picture_streams:
                        if packet.size:
                            packet.stream = picture_streams[packet.stream.index]
                            out.mux(packet)
                        continue
                    for frame in packet.decode():
                        samples = frame_to_float(frame)
                        for piece in plan.apply(samples, position):
                            encoder_stream.push(piece)
                            kept += piece.shape[1]
                        position += samples.shape[1]
                        decoded += samples.shape[1]
            except av.FFmpegError as error:
                raise AudioError(
                    f"{path}: cutting failed after {decoded / sample_rate:.1f} s of audio ({_reason(error)})"
                ) from None
            encoder_stream.finish()
        finally:
            out.close()
    finally:
        source.close()
    return CutResult(
        out_path,
        kept / sample_rate,
        (position - kept) / sample_rate,
        len(chapters),
        bool(picture_streams),
        REENCODE,
    )
