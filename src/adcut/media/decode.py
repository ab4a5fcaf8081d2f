"""Decoding any common audio format to float samples, streamed in blocks, through PyAV (the FFmpeg libraries)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adcut.core.units import Seconds
from adcut.errors import AudioError

log = logging.getLogger(__name__)


# Extensions `adcut process DIR` treats as audio.
AUDIO_SUFFIXES = (
    ".mp3",
    ".wav",
    ".flac",
    ".ogg",
    ".oga",
    ".opus",
    ".m4a",
    ".m4b",
    ".aac",
    ".mp4",
    ".wma",
    ".aif",
    ".aiff",
)


# How much decoded audio is gathered before it is resampled and handed on (bounds memory).
DEFAULT_BLOCK_SECONDS: Seconds = 30.0


# A file whose decoded length falls short of its declared length by more than this is truncated.
_TRUNCATION_TOLERANCE = 0.05


@dataclass(frozen=True)
class AudioInfo:
    """What a file is, as read from its container without decoding it."""

    path: str
    format_name: str  # container, e.g. "mp3", "wav", "ogg", "mov,mp4,m4a,3gp,3g2,mj2"
    codec: str  # e.g. "mp3", "pcm_s16le", "vorbis", "aac"
    sample_rate: int
    channels: int
    bit_rate: int | None  # bits per second, None when the container does not say
    duration: Seconds | None  # declared duration, None when the container does not say


def _open(path: Path):
    import av

    path = Path(path)
    if not path.exists():
        raise AudioError(f"{path}: file not found")
    if path.is_dir():
        raise AudioError(f"{path}: is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: file is empty")
    try:
        container = av.open(str(path), metadata_errors="replace")
    except av.FFmpegError as error:
        raise AudioError(f"{path}: not a readable audio file ({_reason(error)})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise AudioError(f"{path}: cannot open ({error})") from None
    if not container.streams.audio:
        container.close()
        raise AudioError(f"{path}: contains no audio stream")
    return container


def _reason(error: Exception) -> str:
    text = getattr(error, "strerror", None) or str(error)
    return text.split(";")[0].strip().rstrip(":") or type(error).__name__


def probe(path: Path) -> AudioInfo:
    """Read an audio file's format, rate, channels, bitrate and declared duration."""
    container = _open(path)
    try:
        return _info(path, container)
    finally:
        container.close()


def _info(path: Path, container) -> AudioInfo:
    stream = container.streams.audio[0]
    ctx = stream.codec_context
    duration = None
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / 1_000_000
    if container.format.name == "wav" and ctx.sample_rate and ctx.bit_rate:
        # FFmpeg clamps a WAV's duration to the bytes present, hiding truncation: use the header's.
        declared = _wav_data_bytes(path)
        if declared:
            duration = max(duration or 0.0, declared * 8 / ctx.bit_rate)
    bit_rate = ctx.bit_rate or container.bit_rate or None
    return AudioInfo(
        path=str(path),
        format_name=container.format.name,
        codec=ctx.name,
        sample_rate=int(ctx.sample_rate or 0),
        channels=int(ctx.channels or 0),
        bit_rate=int(bit_rate) if bit_rate else None,
        duration=duration,
    )


def _wav_data_bytes(path: Path) -> int | None:
    """Size of a RIFF/WAVE file's ``data`` chunk as its header declares it (None: unknown/streamed)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            for _ in range(64):  # chunks before 'data' are few (fmt, LIST, fact)
                chunk = handle.read(8)
                if len(chunk) < 8:
                    return None
                size = int.from_bytes(chunk[4:8], "little")
                if chunk[:4] == b"data":
                    return size if 0 < size < 0xFFFFFFF0 else None  # 0 / -1: written by a streaming encoder
                handle.seek(size + (size & 1), 1)
    except OSError:
        return None
    return None


def frame_to_float(frame) -> np.ndarray:
    """A decoded PyAV frame as float32 ``(channels, samples)`` in [-1, 1], whatever its sample format."""
    return _array_to_float(frame.to_ndarray(), *frame_layout(frame))


def _array_to_float(array: np.ndarray, planar: bool, channels: int, format_name: str) -> np.ndarray:
    """``to_ndarray`` output (of one frame, or frames joined along axis 1) as float32 ``(channels, n)``."""
    if not planar:
        array = array.reshape(-1, channels).T  # packed: (1, n*ch) -> (ch, n)
    kind = array.dtype
    if kind == np.float32:
        return array
    if kind == np.float64:
        return array.astype(np.float32)
    if kind == np.int16:
        return array.astype(np.float32) * np.float32(1.0 / 32768.0)
    if kind == np.int32:
        return array.astype(np.float32) * np.float32(1.0 / 2147483648.0)
    if kind == np.uint8:
        return (array.astype(np.float32) - 128.0) * np.float32(1.0 / 128.0)
    if kind == np.int64:
        return (array.astype(np.float64) * (1.0 / 9223372036854775808.0)).astype(np.float32)
    raise AudioError(f"unsupported sample format {format_name}")


def _iter_decoded(path: Path) -> Iterator[tuple[AudioInfo, Any]]:
    """Raw PyAV frames of the first audio stream, with the corrupt/truncated checks around them."""
    import av

    container = _open(path)
    try:
        info = _info(path, container)
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        decoded = 0
        try:
            for frame in container.decode(stream):
                if frame.sample_rate != info.sample_rate and decoded:
                    raise AudioError(f"{path}: sample rate changes inside the file; convert it first")
                decoded += frame.samples
                yield info, frame
        except av.FFmpegError as error:
            raise AudioError(
                f"{path}: corrupt audio after {decoded / max(info.sample_rate, 1):.1f} s ({_reason(error)})"
            ) from None
        if decoded == 0:
            raise AudioError(f"{path}: contains no audio samples")
        declared = info.duration
        if declared and info.sample_rate:
            got = decoded / info.sample_rate
            if got < declared * (1 - _TRUNCATION_TOLERANCE) - 1.0:
                raise AudioError(
                    f"{path}: truncated or corrupt: decoded {got:.1f} s of a declared {declared:.1f} s"
                )
    finally:
        container.close()


def iter_frames(path: Path) -> Iterator[tuple[AudioInfo, np.ndarray]]:
    """Decoded frames of the first audio stream as float32 ``(channels, samples)`` at the file's rate.

    Raises AudioError for corrupt data, and for a file that decodes to clearly less audio than its
    container declares (truncated download).
    """
    for info, frame in _iter_decoded(path):
        yield info, frame_to_float(frame)


def iter_blocks(
    path: Path, sample_rate: int, block_seconds: Seconds = DEFAULT_BLOCK_SECONDS, tap=None
) -> Iterator[np.ndarray]:
    """Mono float32 blocks at ``sample_rate``: channels averaged (not summed), resampled with soxr.

    Frames are gathered raw and converted, downmixed and resampled once per block: per-frame numpy
    calls would cost about as much as FFmpeg's own MP3 decoding. ``tap``: see ``resampled_blocks``.
    """
    state: dict = {}

    def frames() -> Iterator[tuple[Any, int, int]]:
        for info, frame in _iter_decoded(path):
            state.setdefault("rate", info.sample_rate)
            yield frame, 0, frame.samples

    yield from resampled_blocks(frames(), lambda: state["rate"], sample_rate, block_seconds, tap=tap)


def pcm16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] as int16 (clipped)."""
    return (np.clip(samples, -1.0, 1.0) * 32767).astype(np.int16)


class RateTap:
    """A second sample rate from a decode already under way: ``tap`` for ``resampled_blocks``.

    Mono blocks at the input rate, starting at input sample ``first_input`` of the file, are
    resampled to ``rate`` and handed to ``sink(offset, int16 samples)`` with ``offset`` the position
    at ``rate`` in the whole file; only samples whose time lies in ``[keep_from, keep_until)``
    (input samples; ``keep_until`` None: to the end) are handed on, so that decoders of neighbouring
    time ranges each give their own part and none gives its resampler's start-up. Call ``finish`` at
    the end of the file for the resampler's last samples.
    """

    def __init__(
        self, rate: int, sink, first_input: int = 0, keep_from: int = 0, keep_until: int | None = None
    ):
        self.rate = rate
        self.sink = sink
        self.first_input, self.keep_from, self.keep_until = first_input, keep_from, keep_until
        self._resampler: Any = None  # a soxr stream, or False when the rates are equal
        self._input_rate = 0
        self._made = 0  # samples at ``rate`` made so far

    def __call__(self, mono: np.ndarray, input_rate: int) -> None:
        import soxr

        if self._resampler is None:
            self._input_rate = input_rate
            if input_rate != self.rate:
                self._resampler = soxr.ResampleStream(input_rate, self.rate, 1, dtype="float32", quality="HQ")
            else:
                self._resampler = False
        out = self._resampler.resample_chunk(np.ascontiguousarray(mono)) if self._resampler else mono
        self._hand_on(out)

    def finish(self) -> None:
        if self._resampler:
            self._hand_on(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))

    def _hand_on(self, out: np.ndarray) -> None:
        if not len(out):
            return
        scale = self.rate / self._input_rate
        base = int(round(self.first_input * scale))  # where this decode's first output sample lies
        start = base + self._made
        self._made += len(out)
        lo = max(start, int(np.ceil(self.keep_from * scale)))
        hi = start + len(out)
        if self.keep_until is not None:
            hi = min(hi, int(np.ceil(self.keep_until * scale)))
        if hi > lo:
            self.sink(lo, pcm16(out[lo - start : hi - start]))


def frame_layout(frame) -> tuple[bool, int, str]:
    """(planar, channels, sample format name) of a PyAV frame: what ``_array_to_float`` needs."""
    return frame.format.is_planar, frame.layout.nb_channels, frame.format.name


def frame_array(frame, lo: int, hi: int) -> np.ndarray:
    """``frame.to_ndarray()`` limited to samples ``[lo, hi)`` (planar ``(ch, n)``, packed ``(1, n*ch)``)."""
    array = frame.to_ndarray()
    if (lo, hi) == (0, frame.samples):
        return array
    planar, channels, _ = frame_layout(frame)
    return array[:, lo:hi] if planar else array[:, lo * channels : hi * channels]


def resampled_blocks(
    frames: Iterator[tuple[Any, int, int]],
    input_rate,
    sample_rate: int,
    block_seconds: Seconds = DEFAULT_BLOCK_SECONDS,
    flush_at_end: bool = True,
    tap=None,
) -> Iterator[np.ndarray]:
    """``(PyAV frame, lo, hi)``: samples ``[lo, hi)`` of frames at ``input_rate()`` -> mono float32 blocks at ``sample_rate``.

    ``tap(mono, rate)``, when given, sees every mono block at the input rate before it is resampled
    (a ``RateTap`` makes a second rate from the same decode).

    ``input_rate`` is called once the first frame has arrived (the rate is known only then).
    Planar float frames (MP3, AAC, Vorbis) are summed channel by channel straight from the frame's
    planes into one block buffer: ``to_ndarray`` and joining the copies cost more than decoding the
    MP3 (measured 2.2 s per hour of 44.1 kHz stereo). Other formats are converted per block. Either
    way the numbers equal ``mean`` over the channels. Without ``flush_at_end`` the resampler keeps
    back the samples whose values depend on input that never came, so every sample handed out equals
    that of a pass over more of the file (a time range cut out of a longer decode; ``features.episode``).
    """
    import soxr

    resampler = None
    pending: list[np.ndarray] = []  # to_ndarray output of frames in other formats
    summed = np.zeros(0, np.float32)  # channel sums of planar float frames
    filled = 0
    pending_samples = 0
    block_limit = 0
    layout: Any = (
        None  # None, or (planar, channels, format name) of the samples gathered since the last flush
    )

    def flush(last: bool = False) -> np.ndarray:
        nonlocal pending, pending_samples, filled
        if filled:
            mono = summed[:filled]
            if layout[1] > 1:
                np.true_divide(mono, layout[1], out=mono)  # what ``mean`` does after its sum
        elif pending:
            joined = _array_to_float(np.concatenate(pending, axis=1), *layout)
            mono = joined.mean(axis=0, dtype=np.float32) if joined.shape[0] > 1 else joined[0]
        else:
            mono = np.zeros(0, np.float32)
        pending, pending_samples, filled = [], 0, 0
        if tap is not None and len(mono):
            tap(mono, input_rate())
        if resampler:
            return resampler.resample_chunk(np.ascontiguousarray(mono), last=last)
        return mono.copy()  # the block buffer is reused

    for frame, lo, hi in frames:
        if resampler is None:
            rate = input_rate()
            block_limit = max(1, int(block_seconds * rate))
            if rate != sample_rate:
                resampler = soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality="HQ")
            else:
                resampler = False
        frame_kind = frame_layout(frame)
        if layout is not None and frame_kind != layout and (pending or filled):
            yield flush()  # the decoder changed sample format or channels: convert what we have first
        layout = frame_kind
        n = hi - lo
        if frame_kind[0] and frame_kind[2] == "flt" + "p":
            if filled + n > len(summed):
                grown = np.zeros(max(2 * len(summed), block_limit + n, filled + n), np.float32)
                grown[:filled] = summed[:filled]
                summed = grown
            out = summed[filled : filled + n]
            planes = frame.planes
            np.copyto(out, np.frombuffer(planes[0], np.float32, count=hi)[lo:])
            for plane in planes[1 : frame_kind[1]]:  # row after row, as numpy's sum over axis 0
                np.add(out, np.frombuffer(plane, np.float32, count=hi)[lo:], out=out)
            filled += n
        else:
            pending.append(frame_array(frame, lo, hi))
        pending_samples += n
        if pending_samples >= block_limit:
            yield flush()
    block = flush(last=flush_at_end)
    if block.size:
        yield block


def prefetch(iterator: Iterator, depth: int = 4) -> Iterator:
    """Run ``iterator`` in a background thread, ``depth`` items ahead.

    FFmpeg decoding and soxr resampling release the GIL, so decoding the next block overlaps with
    the caller's feature extraction and inference on the other core. Errors reach the caller.
    """
    import queue
    import threading

    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in iterator:
                while not stop.is_set():
                    try:
                        items.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            items.put(("end", done))
        except BaseException as error:  # handed to the consumer, which re-raises it
            items.put(("error", error))

    worker = threading.Thread(target=produce, name="adcut-decode", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = items.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        worker.join(timeout=5)


def decode(path: Path, sample_rate: int) -> np.ndarray:
    """The whole file as one mono float32 array at ``sample_rate``."""
    blocks = list(iter_blocks(path, sample_rate))
    return np.concatenate(blocks).astype(np.float32, copy=False) if blocks else np.zeros(0, np.float32)


def decode_original(path: Path) -> tuple[AudioInfo, np.ndarray]:
    """The whole file at its own rate and channel count, float32 ``(channels, samples)``."""
    info = None
    frames = []
    for info, samples in iter_frames(path):  # noqa: B007 - info is read after the loop
        frames.append(samples)
    assert info is not None  # iter_frames raises when nothing decodes
    return info, np.concatenate(frames, axis=1)
