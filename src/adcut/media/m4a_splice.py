"""M4A/AAC cut by copying packets: only a short stretch around each join is decoded and re-encoded.

An AAC-LC packet holds 1024 samples, and decoding one needs its predecessor (the transform windows
overlap by half). So the kept audio is split into

- copied runs: the input's packets, byte for byte, for everything at least a packet away from a cut;
- re-encoded pieces: from the last copied packet before a removed stretch to the first copied packet
  after it, the original audio is decoded (a few packets of warm-up before, so it decodes right),
  faded on the kept side of the cut exactly as the re-encode path fades it, and encoded with FFmpeg's
  AAC encoder at the input's bit rate. The encoder is given the audio of the packet before the piece
  and after it too, so the piece's first and last packets overlap-add with the copied neighbours
  almost as the original packets did.

A piece followed by copied packets must be a whole number of packets long; the kept audio is
lengthened by a little silence at the join or shortened at the start of the content after the cut
(the ad's edge rounded outward), whichever keeps the later audio nearer its exact time: every kept
span sits within half a packet (12 ms at 44.1 kHz) of where the segment list says. Timestamps run on
continuously; the input's encoder priming (its first, discarded packet and the edit list) is kept when
the output starts with copied packets, and the encoder's own priming otherwise. The file is written
with ``movflags=faststart`` (``moov`` at the front), with the input's tags, cover art and re-timed
chapters.

What this path does not handle (HE-AAC, other codecs, packets of other sizes, irregular timestamps)
raises ``CopyUnsupported``, so the caller re-encodes the whole file instead.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, cast

import numpy as np

from adcut.core.segments import Segment
from adcut.core.units import Seconds
from adcut.errors import CopyUnsupported
from adcut.media.encode import copy_cover_art
from adcut.media.timeline import CutResult, fade_gain, kept_plan, retime_chapters, sample_spans

log = logging.getLogger(__name__)

PACKET = 1024  # samples per AAC-LC packet
MIN_COPY_PACKETS = 4  # a span with fewer whole packets clear of its fades is re-encoded whole
PREROLL = 2 * PACKET  # audio before a piece given to the encoder (its output there is dropped)
POSTROLL = 2 * PACKET  # and after it
WARMUP = 2 * PACKET  # packets decoded (and dropped) before audio that must decode right

MP4_FORMATS = {".m4a": "ipod", ".m4b": "ipod", ".mp4": "mp4"}


def _unsupported(message: str) -> Exception:
    return CopyUnsupported(message)


@dataclass
class Piece:
    """Kept audio re-encoded between two copied runs (or at the output's start or end)."""

    ranges: list[tuple[int, int, int, int, int, int]]  # (lo, hi, span a, span b, fade_in, fade_out)
    pad: int = 0  # samples of silence after the first range
    preroll_end: int | None = None  # original sample where the copied run before it ends
    postroll_start: int | None = None  # original sample where the copied run after it starts
    at_output_start: bool = False
    buffers: dict = field(default_factory=dict)  # decode interval -> collected samples

    @property
    def length(self) -> int:
        return sum(hi - lo for lo, hi, *_ in self.ranges) + self.pad

    def intervals(self) -> list[tuple[int, int]]:
        """Original sample intervals whose decoded audio this piece needs."""
        out = []
        if self.preroll_end is not None:
            out.append((self.preroll_end - PREROLL, self.preroll_end))
        out += [(lo, hi) for lo, hi, *_ in self.ranges]
        if self.postroll_start is not None:
            out.append((self.postroll_start, self.postroll_start + POSTROLL))
        return out


def plan(kept: Sequence[tuple[int, int, int, int]], pts0: int, end: int) -> list[tuple]:
    """The output as ``("copy", first_pts, end_pts)`` runs and ``("encode", Piece)``, in order.

    ``kept``: ``(a, b, fade_in, fade_out)`` samples of each kept span; packets start at ``pts0 + k*1024``
    and the audio ends at ``end``. Copied runs start and end on packet starts (``end_pts`` may be
    ``end``: through the last packet).
    """

    def up(t: int) -> int:
        return pts0 + -(-(t - pts0) // PACKET) * PACKET

    def down(t: int) -> int:
        return pts0 + ((t - pts0) // PACKET) * PACKET

    ops: list[tuple] = []
    pending: list[list[int]] = []
    drift = 0  # output time minus exact time, in samples, after what is planned so far

    def flush(next_copy: int | None) -> int | None:
        """Close the pending piece before a copied run starting at ``next_copy``; returns where that run starts."""
        nonlocal drift
        if not pending:
            return next_copy
        piece = Piece([tuple(r) for r in pending])  # type: ignore[misc]
        piece.at_output_start = not ops
        if ops:
            piece.preroll_end = ops[-1][2] if ops[-1][0] == "copy" else None
        piece.postroll_start = next_copy
        if next_copy is not None:
            r = piece.length % PACKET
            if r:
                # Shorten the content at an ad's edge (the start of the last range, or the end of the first),
                # or add silence between the fade-out and the fade-in: whichever keeps |drift| smallest.
                lo, hi, a, b, fi, fo = piece.ranges[-1]
                can_head = a > 0 and lo == a and hi - lo - r - fi - (fo if hi == b else 0) >= 0
                if a > 0 and lo == a and not can_head and hi == next_copy and hi < b:
                    # Too little room before the copied run starts: re-encode one more packet of it.
                    hi += PACKET
                    next_copy += PACKET
                    piece.ranges[-1] = (lo, hi, a, b, fi, fo)
                    piece.postroll_start = next_copy
                    can_head = True
                lo1, hi1, a1, b1, fi1, fo1 = piece.ranges[0]
                can_tail = fo1 > 0 and hi1 == b1 and hi1 - lo1 - r - fo1 - (fi1 if lo1 == a1 else 0) >= 0
                can_tail = can_tail and not (len(piece.ranges) == 1 and can_head)
                if (can_head or can_tail) and abs(drift - r) <= abs(drift + PACKET - r):
                    if can_head:
                        piece.ranges[-1] = (lo + r, hi, a + r, b, fi, fo)  # the ad's edge rounded outward
                    else:
                        piece.ranges[0] = (lo1, hi1 - r, a1, b1 - r, fi1, fo1)
                    drift -= r
                else:
                    piece.pad = PACKET - r  # silence between the fade-out and the fade-in
                    drift += PACKET - r
        ops.append(("encode", piece))
        pending.clear()
        return next_copy

    for a, b, fi, fo in kept:
        c0 = pts0 if a == 0 and fi == 0 else up(a + fi)
        # The last copied packet's transform block reaches a packet past its own audio: that packet must
        # still be unfaded content, so the block overlaps the re-encoded piece where both hold the same audio.
        c1 = end if b >= end and fo == 0 else down(b - fo) - PACKET
        if c1 - c0 >= MIN_COPY_PACKETS * PACKET or (c1 == end and c1 - c0 >= PACKET):
            if a < c0 and c0 > pts0:
                pending.append([max(a, 0), c0, a, b, fi, fo])
            moved = flush(c0)
            c0 = c0 if moved is None else moved
            ops.append(("copy", c0, c1))
            if c1 < b:
                pending.append([c1, b, a, b, fi, fo])
        else:
            pending.append([a, b, a, b, fi, fo])
    flush(None)
    return ops


class _Collector:
    """Decoded audio of one original interval, from a decoder started a little before it."""

    def __init__(self, stream, lo: int, hi: int):
        self.lo, self.hi = lo, hi
        self.stream = stream
        self.decoder: Any = None  # made when the first packet comes, dropped when done (each holds ~1 MB)
        self.parts: list[np.ndarray] = []
        self.done = False

    def feed(self, packet) -> None:
        import av

        from adcut.media.decode import frame_to_float

        if self.decoder is None:
            self.decoder = av.CodecContext.create(self.stream.codec_context.name, "r")
            self.decoder.extradata = self.stream.codec_context.extradata
        for frame in self.decoder.decode(packet):
            self._take(frame, frame_to_float)

    def _take(self, frame, convert) -> None:
        start = frame.pts if frame.pts is not None else 0
        stop = start + frame.samples
        lo, hi = max(self.lo, start), min(self.hi, stop)
        if hi > lo:
            self.parts.append(convert(frame)[:, lo - start : hi - start])

    def finish(self) -> None:
        from adcut.media.decode import frame_to_float

        if not self.done:
            if self.decoder is not None:
                for frame in self.decoder.decode(None):
                    self._take(frame, frame_to_float)
            self.decoder = None
            self.done = True

    def samples(self, channels: int) -> np.ndarray:
        got = np.concatenate(self.parts, axis=1) if self.parts else np.zeros((channels, 0), np.float32)
        want = self.hi - self.lo
        if got.shape[1] < want:  # past the end of the audio: silence
            got = np.concatenate([got, np.zeros((got.shape[0], want - got.shape[1]), np.float32)], axis=1)
        return got[:, :want]


@dataclass
class M4aCut:
    kept_samples: int
    total_samples: int
    sample_rate: int
    chapters: int
    cover_art: bool
    copied_packets: int
    encoded_packets: int


def write_m4a_cut(
    path: Path,
    spans: Sequence[tuple[Seconds, Seconds]],
    out: Path,
    *,
    duration: Seconds,
    fade_seconds: Seconds,
    suffix: str | None = None,
) -> M4aCut:
    """Write ``path`` keeping ``spans`` (seconds) to ``out`` by copying AAC packets; see the module text."""
    import av

    from adcut.media.decode import _open

    path = Path(path)
    container_format = MP4_FORMATS.get((suffix or path.suffix).lower())
    if container_format is None:
        raise _unsupported(f"{path.name}: only .m4a/.m4b/.mp4 files are copied")
    source = _open(path)
    try:
        audio_in = source.streams.audio[0]
        ctx = audio_in.codec_context
        rate = ctx.sample_rate
        if ctx.name != "aac" or (ctx.profile or "LC") != "LC" or (ctx.frame_size or PACKET) != PACKET:
            what = f"{ctx.name} {ctx.profile}" if ctx.profile else ctx.name
            raise _unsupported(f"{path.name}: {what} audio is not copied (AAC-LC only)")
        if audio_in.time_base != Fraction(1, rate):
            raise _unsupported(f"{path.name}: audio time base {audio_in.time_base} is not 1/{rate}")
        end = audio_in.duration if audio_in.duration else int(round((duration or 0) * rate))
        if end <= 0:
            raise _unsupported(f"{path.name}: the stream does not say how long it is")
        kept = sample_spans(spans, rate, max(duration, end / rate), fade_seconds, end)
        pictures = [s for s in source.streams.video if s.disposition & av.stream.Disposition.attached_pic]
        options = {"movflags": "+faststart"}
        if pictures and container_format == "ipod":
            container_format, options = "mp4", {**options, "brand": "M4A "}
        target = av.open(str(out), mode="w", format=container_format, options=options)
        try:
            for key, value in source.metadata.items():
                if key.lower() not in ("encoder", "major_brand", "minor_version", "compatible_brands"):
                    target.metadata[key] = value
            stream = target.add_stream_from_template(audio_in)
            for key, value in audio_in.metadata.items():
                stream.metadata[key] = value
            picture_streams = copy_cover_art(target, pictures, path.name)
            spans_s = [(a / rate, b / rate) for a, b, _, _ in kept]
            chapters = retime_chapters(source.chapters(), spans_s, end / rate)
            if chapters:
                target.set_chapters(cast(Any, chapters))  # PyAV types them as its Chapter dict
            writer = _Writer(
                path,
                source,
                audio_in,
                stream,
                target,
                picture_streams,
                rate,
                ctx.bit_rate or audio_in.bit_rate,
            )
            writer.run(kept, end)
        finally:
            target.close()
    finally:
        source.close()
    return M4aCut(
        writer.out_samples, end, rate, len(chapters), bool(picture_streams), writer.copied, writer.encoded
    )


class _Writer:
    def __init__(self, path, source, audio_in, stream, target, picture_streams, rate, bit_rate):
        self.path, self.source, self.audio_in, self.stream, self.target = (
            path,
            source,
            audio_in,
            stream,
            target,
        )
        self.picture_streams, self.rate, self.bit_rate = picture_streams, rate, bit_rate
        self.channels = audio_in.codec_context.channels
        self.layout = audio_in.codec_context.layout.name
        self.out_pts: int | None = None
        self.out_samples = 0
        self.copied = self.encoded = 0

    def run(self, kept, end: int) -> None:
        packets = self.source.demux(self.audio_in, *[self.source.streams[i] for i in self.picture_streams])
        first = None
        held: list = []  # audio packets read before the first one was seen (pictures come first)
        for packet in packets:
            if packet.stream.index in self.picture_streams:
                if packet.size:
                    packet.stream = self.picture_streams[packet.stream.index]
                    self.target.mux(packet)
                continue
            if packet.pts is None:
                continue  # the demuxer's empty end-of-stream packet
            first = packet
            held.append(packet)
            break
        if first is None:
            raise _unsupported(f"{self.path.name}: no audio packets")
        pts0 = first.pts
        ops = plan(kept, pts0, end)
        self._stream_ops(ops, pts0, end, held, packets)

    def _stream_ops(self, ops, pts0: int, end: int, held, packets) -> None:
        # Decode intervals (with warm-up) each piece needs; a collector per interval.
        collectors: list[tuple[Piece, _Collector]] = []
        for op in ops:
            if op[0] == "encode":
                for lo, hi in op[1].intervals():
                    collector = _Collector(self.audio_in, lo, hi)
                    op[1].buffers[(lo, hi)] = collector
                    collectors.append((op[1], collector))
        copy_runs = [(op[1], op[2]) for op in ops if op[0] == "copy"]
        queue: deque = deque(ops)
        pending_packets: deque = deque()  # copied packets waiting for an earlier piece to be ready
        expected = pts0

        # Both lists are walked with a pointer as the packets go by (a long episode has ~150,000 packets).
        waiting = deque(sorted((c for _, c in collectors), key=lambda c: c.lo))
        active: list[_Collector] = []
        runs = deque(copy_runs)

        def feed_collectors(pts: int, packet) -> None:
            while waiting and waiting[0].lo - WARMUP <= pts:
                active.append(waiting.popleft())
            for collector in list(active):
                if pts < collector.hi:
                    collector.feed(packet)
                else:
                    collector.finish()
                    active.remove(collector)

        def in_copy_run(pts: int) -> bool:
            while runs and pts >= runs[0][1]:
                runs.popleft()
            return bool(runs) and runs[0][0] <= pts

        def emit_ready(final: bool = False) -> None:
            while queue:
                op = queue[0]
                if op[0] == "encode":
                    if not final and not all(c.done for c in op[1].buffers.values()):
                        return
                    self._encode_piece(op[1])
                else:
                    _, c0, c1 = op
                    while pending_packets and pending_packets[0].pts < c1:
                        self._copy(pending_packets.popleft())
                    if not (final or pending_packets or (last_seen is not None and last_seen + PACKET >= c1)):
                        return
                queue.popleft()

        last_seen = None
        audio_index = self.audio_in.index
        for packet in _chain(held, packets):
            if packet.stream_index != audio_index:
                if packet.stream.index in self.picture_streams and packet.size:
                    packet.stream = self.picture_streams[packet.stream.index]
                    self.target.mux(packet)
                continue
            pts = packet.pts
            if pts is None:
                continue
            if pts != expected:
                raise _unsupported(
                    f"{self.path.name}: irregular AAC timestamps ({pts} where {expected} was due)"
                )
            expected = pts + PACKET
            last_seen = pts
            if active or (waiting and waiting[0].lo - WARMUP <= pts):
                feed_collectors(pts, packet)
            if in_copy_run(pts):
                front = queue[0] if queue else None
                if (
                    not pending_packets
                    and front is not None
                    and front[0] == "copy"
                    and front[1] <= pts < front[2] - PACKET
                ):
                    self._copy(packet)  # the common case: inside a copied run, nothing waiting before it
                    continue
                pending_packets.append(packet)
            emit_ready()
        for _, collector in collectors:
            collector.finish()
        emit_ready(final=True)
        while pending_packets:
            self._copy(pending_packets.popleft())
        self.out_samples = max(0, self.out_pts or 0)

    def _copy(self, packet) -> None:
        if self.out_pts is None:
            self.out_pts = packet.pts
        duration = packet.duration or PACKET
        packet.stream = self.stream
        packet.pts = packet.dts = self.out_pts
        self.target.mux(packet)
        self.out_pts += duration
        self.copied += 1

    def _encode_piece(self, piece: Piece) -> None:
        import av

        parts = []
        if piece.preroll_end is not None:
            parts.append(
                piece.buffers[(piece.preroll_end - PREROLL, piece.preroll_end)].samples(self.channels)
            )
        preroll = parts[0].shape[1] if parts else 0
        if piece.pad and len(piece.ranges) == 1:  # a lone head: the silence goes before its fade-in
            parts.append(np.zeros((self.channels, piece.pad), np.float32))
        for index, (lo, hi, a, b, fi, fo) in enumerate(piece.ranges):
            audio = piece.buffers[(lo, hi)].samples(self.channels)
            parts.append(audio * fade_gain(lo, hi, a, b, fi, fo))
            if piece.pad and index == 0 and len(piece.ranges) > 1:
                parts.append(np.zeros((self.channels, piece.pad), np.float32))
        if piece.postroll_start is not None:
            parts.append(
                piece.buffers[(piece.postroll_start, piece.postroll_start + POSTROLL)].samples(self.channels)
            )
        audio = np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)
        length = piece.length

        encoder = av.CodecContext.create("aac", "w")
        encoder.sample_rate = self.rate
        encoder.layout = self.layout
        encoder.format = "fltp"
        encoder.time_base = Fraction(1, self.rate)
        if self.bit_rate:
            encoder.bit_rate = self.bit_rate
        encoder.open()
        packets = []
        for start in range(0, audio.shape[1], PACKET):
            chunk = audio[:, start : start + PACKET]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout=self.layout)
            frame.sample_rate = self.rate
            frame.pts = start
            packets += encoder.encode(frame)
        packets += encoder.encode(None)
        first_kept = -PACKET if piece.at_output_start else preroll
        stop = preroll + length
        if self.out_pts is None:
            self.out_pts = -PACKET if piece.at_output_start else 0
        for packet in packets:
            if packet.pts is None or packet.pts < first_kept or packet.pts >= stop:
                continue
            duration = min(PACKET, stop - packet.pts) if piece.postroll_start is None else PACKET
            packet.stream = self.stream
            packet.time_base = Fraction(1, self.rate)
            packet.pts = packet.dts = self.out_pts
            packet.duration = duration
            self.target.mux(packet)
            self.out_pts += duration
            self.encoded += 1


def _chain(first, rest):
    yield from first
    yield from rest


def cut_m4a(
    path: Path,
    info,
    segments: Sequence[Segment],
    tmp: Path,
    out_path: Path,
    *,
    remove: Sequence[str] = ("ad",),
    fade_seconds: Seconds = 0.03,
):
    """The M4A/AAC copy path (``media.cut.COPY_PATHS``): write the cut to ``tmp``; a CutResult for ``out_path``."""
    duration, spans = kept_plan(info, segments, remove)
    done = write_m4a_cut(
        path, spans, tmp, duration=duration, fade_seconds=fade_seconds, suffix=Path(out_path).suffix
    )
    rate = done.sample_rate
    return CutResult(
        Path(out_path),
        done.kept_samples / rate,
        (done.total_samples - done.kept_samples) / rate,
        done.chapters,
        done.cover_art,
        "copy-aac",
    )
