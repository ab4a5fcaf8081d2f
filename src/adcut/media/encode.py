"""Encoding float samples back to audio files, in the input's own format, through PyAV."""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from adcut.errors import AudioError

# Encoder and sample format for each container adcut writes; the codec follows the input's.
_ENCODERS = {
    "mp3": ("libmp3lame", "fltp"),
    "aac": ("aac", "fltp"),
    "vorbis": ("vorbis", "fltp"),
    "opus": ("libopus", "flt"),
    "flac": ("flac", "s16"),
    "pcm_s16le": ("pcm_s16le", "s16"),
    "pcm_s24le": ("pcm_s24le", "s32"),
    "pcm_f32le": ("pcm_f32le", "flt"),
}


_CODEC_ALIASES = {
    "mp3float": "mp3",
    "libvorbis": "vorbis",
    "libopus": "opus",
    "aac_latm": "aac",
    "pcm_s16be": "pcm_s16le",
}


_FORMAT_BY_SUFFIX = {
    ".mp3": "mp3",
    ".wav": "wav",
    ".flac": "flac",
    ".ogg": "ogg",
    ".opus": "ogg",
    ".m4a": "ipod",
    ".m4b": "ipod",
    ".aac": "adts",
    ".mp4": "mp4",
}


_CODEC_BY_SUFFIX = {
    ".mp3": "mp3",
    ".wav": "pcm_s16le",
    ".flac": "flac",
    ".ogg": "vorbis",
    ".opus": "opus",
    ".m4a": "aac",
    ".m4b": "aac",
    ".aac": "aac",
    ".mp4": "aac",
}


# Encoders whose output size is not set by a bit rate: lossless ones, and FFmpeg's Vorbis (quality-based).
_NO_BIT_RATE = ("flac", "vorbis")


def open_audio_stream(
    container: Any,
    encoder: str,
    sample_rate: int,
    layout: str,
    bit_rate: int | None = None,
    *,
    metadata: Mapping[str, str] | None = None,
    options: Mapping[str, str] | None = None,
) -> Any:
    """An opened ``encoder`` stream in the PyAV output ``container``: the one place encoders are set up.

    ``bit_rate`` applies where the encoder takes one (not lossless, not Vorbis); ``options`` are the
    encoder's own (FFmpeg's Vorbis encoder always gets the ``strict`` it needs).
    """
    stream = container.add_stream(encoder, rate=sample_rate, layout=layout)
    for key, value in (metadata or {}).items():
        stream.metadata[key] = value
    if bit_rate and encoder not in _NO_BIT_RATE and not encoder.startswith("pcm"):
        stream.bit_rate = bit_rate
    codec_options = dict(options or {})
    if encoder == "vorbis":
        codec_options["strict"] = "experimental"  # FFmpeg's own Vorbis encoder
    if codec_options:
        stream.codec_context.options = codec_options
    stream.codec_context.open()
    return stream


def write_audio(
    path: Path,
    samples: np.ndarray,
    sample_rate: int,
    *,
    codec: str | None = None,
    bit_rate: int | None = None,
    metadata: dict[str, str] | None = None,
) -> None:
    """Encode float32 ``samples`` (``(channels, n)`` or mono ``(n,)``) to ``path`` (format by suffix).

    Writes to ``path`` directly: callers that must not leave half-written files give a temporary
    name and rename it afterwards (see ``export.py``).
    """
    import av

    path = Path(path)
    suffix = path.suffix.lower()
    codec = _CODEC_ALIASES.get(codec, codec) if codec else _CODEC_BY_SUFFIX.get(suffix)
    if codec not in _ENCODERS or suffix not in _FORMAT_BY_SUFFIX:
        raise AudioError(f"{path}: cannot write this format (codec {codec})")
    encoder, sample_format = _ENCODERS[codec]
    samples = np.atleast_2d(np.asarray(samples, dtype=np.float32))
    channels = samples.shape[0]
    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
    container = av.open(str(path), mode="w", format=_FORMAT_BY_SUFFIX[suffix])
    try:
        for key, value in (metadata or {}).items():
            container.metadata[key] = value
        stream = open_audio_stream(container, encoder, sample_rate, layout, bit_rate)
        writer = StreamEncoder(container, stream, sample_format, layout, sample_rate)
        writer.push(samples)
        writer.finish()
    finally:
        container.close()


class StreamEncoder:
    """Encodes float32 ``(channels, n)`` pieces in the encoder's frame size as they arrive."""

    def __init__(self, container, stream, sample_format: str, layout: str, sample_rate: int):
        self.container, self.stream = container, stream
        self.sample_format, self.layout, self.sample_rate = sample_format, layout, sample_rate
        self.frame_size = stream.codec_context.frame_size or 4608
        self.pending: list[np.ndarray] = []
        self.pending_samples = 0
        self.pts = 0

    def push(self, piece: np.ndarray) -> None:
        self.pending.append(piece)
        self.pending_samples += piece.shape[1]
        if self.pending_samples >= self.frame_size:
            joined = np.concatenate(self.pending, axis=1)
            whole = (joined.shape[1] // self.frame_size) * self.frame_size
            for start in range(0, whole, self.frame_size):
                self._encode(joined[:, start : start + self.frame_size])
            rest = joined[:, whole:]
            self.pending, self.pending_samples = ([rest] if rest.shape[1] else []), rest.shape[1]

    def finish(self) -> None:
        if self.pending_samples:
            self._encode(np.concatenate(self.pending, axis=1))
        for packet in self.stream.encode(None):
            self._mux(packet)

    def _mux(self, packet) -> None:
        # The last frame is padded to a whole encoder frame; a packet duration that ends at the
        # true end lets the muxer record the real length (MP4 needs this; MP3 has its LAME tag).
        if packet.pts is not None and packet.duration and packet.time_base == Fraction(1, self.sample_rate):
            end = packet.pts + packet.duration
            if end > self.pts:
                packet.duration = max(1, self.pts - packet.pts)
        self.container.mux(packet)

    def _encode(self, chunk: np.ndarray) -> None:
        import av

        chunk = np.clip(chunk, -1.0, 1.0)
        if self.sample_format.startswith("s16"):
            chunk = (chunk * 32767.0).round().astype(np.int16)
        elif self.sample_format.startswith("s32"):
            chunk = (chunk * 2147483647.0).round().astype(np.int32)
        data = chunk if self.sample_format.endswith("p") else chunk.T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(
            np.ascontiguousarray(data), format=self.sample_format, layout=self.layout
        )
        frame.sample_rate = self.sample_rate
        frame.pts = self.pts
        self.pts += chunk.shape[1]
        for packet in self.stream.encode(frame):
            self._mux(packet)


def copy_cover_art(target, pictures, name: str) -> dict:
    """Add each attached picture (cover art) of the source to ``target``; ``{source index: new stream}``.

    A picture the muxer refuses is left out with a warning: the audio matters more than its cover.
    """
    import logging

    import av

    copies = {}
    for picture in pictures:
        try:
            copy = target.add_stream_from_template(picture)
            copy.disposition = av.stream.Disposition.attached_pic
            copies[picture.index] = copy
        except (av.FFmpegError, ValueError) as error:
            logging.getLogger(__name__).warning("%s: cover art not copied (%s)", name, error)
    return copies
