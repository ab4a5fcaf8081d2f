"""Rebuilding the frames at a join: the few frames each side of a cut decoded, faded, encoded again by LAME without a
bit reservoir, and packed so that the first copied frame after them still finds the reservoir bytes it points
back to (the last new frames enlarged, or the stretch encoded a bit-rate step lower, when they have no room)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from adcut.errors import CopyUnsupported
from adcut.media.mp3.frames import (
    BITRATES,
    DECODER_DELAY,
    Header,
    Mp3File,
    main_data_begin,
    main_data_length,
    parse_header,
    set_main_data_begin,
    with_bitrate,
)
from adcut.media.mp3.plan import Piece
from adcut.media.timeline import ramp

LAME_DELAY = 576  # the encoder delay LAME adds in front of its input
WARMUP_SAMPLES = 1152  # audio the encoder has seen before a re-encoded stretch starts (the frames it makes
# of it, and of the codec delay before it, are thrown away)
TRAIL_FRAMES = 2  # frames fed after it, so its last frames are coded with the audio that follows


def _av():
    """PyAV, imported when a join is rebuilt (its FFmpeg log stays as adcut leaves it: off by default)."""
    import av

    return av


def decode_frames(mp3: Mp3File, lo: int, hi: int) -> np.ndarray:
    """The decoded-stream samples of frames ``lo..hi`` as float32 ``(channels, n)``, decoded from early enough
    that their bit reservoir and the decoder's overlap are those of the whole file."""
    av = _av()
    start = lo
    back = 0
    # The frame before lo must decode right (its overlap feeds lo): go back past its reservoir too.
    while start > 0 and (back < 2 * mp3.first.max_back or lo - start < 3):
        start -= 1
        back += mp3.sizes[start]
    decoder = av.CodecContext.create("mp3float", "r")
    channels = mp3.first.channels
    out = []
    for index in range(start, hi):
        try:
            frames = decoder.decode(av.Packet(mp3.frame(index)))
        except av.FFmpegError:
            frames = []
        if index < lo:
            continue
        got = [f.to_ndarray().reshape(channels, -1) for f in frames]
        block = np.concatenate(got, axis=1) if got else np.zeros((channels, 0), np.float32)
        n = mp3.samples_per_frame
        if block.shape[1] != n:  # a frame the decoder refused: silence in its place
            block = np.zeros((channels, n), np.float32) if block.shape[1] < n else block[:, :n]
        out.append(block.astype(np.float32, copy=False))
    return np.concatenate(out, axis=1) if out else np.zeros((channels, 0), np.float32)


def encode_stretch(mp3: Mp3File, pcm: np.ndarray, bit_rate: int) -> list[bytes]:
    """LAME frames, without bit reservoir, for float ``pcm``; output frame j decodes to ``pcm`` frame j's samples
    when ``pcm`` starts LAME_DELAY + DECODER_DELAY samples late (the caller shifts it)."""
    av = _av()
    n = mp3.samples_per_frame
    channels = mp3.first.channels
    layout = "mono" if channels == 1 else "stereo"
    ctx = av.CodecContext.create("libmp3lame", "w")
    ctx.sample_rate = mp3.first.sample_rate
    ctx.layout = layout
    ctx.format = "fltp"
    ctx.bit_rate = bit_rate
    ctx.options = {"reservoir": "0"}
    ctx.open()
    packets = []
    pcm = np.clip(pcm, -1.0, 1.0).astype(np.float32)
    for start in range(0, pcm.shape[1], n):
        chunk = pcm[:, start : start + n]
        if chunk.shape[1] < n:
            chunk = np.pad(chunk, ((0, 0), (0, n - chunk.shape[1])))
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk), format="fltp", layout=layout)
        frame.sample_rate = mp3.first.sample_rate
        frame.pts = start
        packets.extend(ctx.encode(frame))
    packets.extend(ctx.encode(None))
    if packets and packets[0].pts is not None and -packets[0].pts != LAME_DELAY + DECODER_DELAY:
        raise CopyUnsupported(
            f"the MP3 encoder's delay is {-packets[0].pts} samples, not {LAME_DELAY + DECODER_DELAY}"
        )
    return [bytes(p) for p in packets]


@dataclass
class NewFrame:
    header: Header
    side: bytearray
    data: bytes  # its main data (it starts in its own frame: no reservoir)


def split_new(frame: bytes) -> NewFrame:
    header = parse_header(int.from_bytes(frame[:4], "big"))
    if header is None:
        raise CopyUnsupported("the MP3 encoder wrote a frame this module cannot read")
    at = 4 + (2 if header.crc else 0)
    side = bytearray(frame[at : at + header.side_info])
    if main_data_begin(frame, header):
        raise CopyUnsupported("the MP3 encoder used its bit reservoir")
    length = main_data_length(frame, header)
    data = frame[header.data_start : header.data_start + length]
    header = with_bitrate(header, header.bitrate_index) if header.crc else header
    return NewFrame(header, side, data)


def pack_frames(frames: list[NewFrame], reservoir: bytes) -> list[bytes]:
    """Lay the new frames' data into frames so that the stream ends with ``reservoir`` (what the next, copied
    frame points back to); frames are enlarged (higher bit-rate index) where the bytes do not fit."""
    if not frames:
        if reservoir:
            raise CopyUnsupported("no frame to carry the bit reservoir")
        return []
    headers = [f.header for f in frames]
    top = 14
    while True:
        layout = _layout(frames, headers, len(reservoir))
        if layout is not None:
            break
        # Enlarge the last frame that can grow; the data moves back into it.
        for j in range(len(headers) - 1, -1, -1):
            if headers[j].bitrate_index < top:
                headers[j] = with_bitrate(headers[j], headers[j].bitrate_index + 1)
                break
        else:
            raise CopyUnsupported("a join's re-encoded frames cannot carry the bit reservoir")
    starts, caps = layout
    stream = bytearray(sum(caps))
    position = 0
    for frame, start in zip(frames, starts):
        stream[start : start + len(frame.data)] = frame.data
    if reservoir:
        stream[len(stream) - len(reservoir) :] = reservoir
    out = []
    for frame, header, start, cap in zip(frames, headers, starts, caps):
        side = bytearray(frame.side)
        set_main_data_begin(side, header, position - start)
        out.append(header.word.to_bytes(4, "big") + bytes(side) + bytes(stream[position : position + cap]))
        position += cap
    return out


def _layout(frames: list[NewFrame], headers: list[Header], reserve: int):
    starts, caps = [], []
    at = 0  # where the frame's payload starts in the stream
    used = 0  # where the data so far ends
    for frame, header in zip(frames, headers):
        cap = header.size - header.data_start
        start = max(used, at - header.max_back)
        if start + len(frame.data) > at + cap:
            return None
        starts.append(start)
        caps.append(cap)
        used = start + len(frame.data)
        at += cap
    if used > at - reserve:
        return None
    return starts, caps


def reservoir_before(mp3: Mp3File, index: int) -> bytes:
    """The ``main_data_begin`` bytes frame ``index`` reads from the frames before it, as the input has them."""
    header = mp3.header(index)
    need = main_data_begin(mp3.frame(index), header)
    parts: list[bytes] = []
    got = 0
    k = index - 1
    while got < need and k >= 0:
        h = mp3.header(k)
        payload = mp3.frame(k)[h.data_start :]
        parts.append(payload)
        got += len(payload)
        k -= 1
    joined = b"".join(reversed(parts))
    if len(joined) < need:
        joined = bytes(need - len(joined)) + joined
    return joined[len(joined) - need :] if need else b""


def stretch_bit_rate(mp3: Mp3File) -> int:
    """The CBR rate for re-encoded frames: the stream's mean rate, rounded up to a valid one."""
    total_bytes = sum(mp3.sizes)
    seconds = len(mp3.sizes) * mp3.samples_per_frame / mp3.first.sample_rate
    mean = 8 * total_bytes / seconds
    for kbps in BITRATES[mp3.first.mpeg1][1:]:
        if kbps * 1000 >= mean * 0.98:
            return kbps * 1000
    return BITRATES[mp3.first.mpeg1][-1] * 1000


def warmup_frames(mp3: Mp3File) -> int:
    """Frames fed before a stretch: the codec delay (LAME's and the decoder's) plus WARMUP_SAMPLES of audio."""
    n = mp3.samples_per_frame
    return -(-(LAME_DELAY + DECODER_DELAY + WARMUP_SAMPLES) // n)


def stretch_pcm(
    mp3: Mp3File,
    run: list[Piece],
    before: tuple[int, int] | None,
    after: tuple[int, int] | None,
    fade_samples: int,
) -> np.ndarray:
    """What the encoder is fed for a run of re-encoded pieces: warm-up audio, the pieces (faded at cut edges), and
    audio to look ahead into, shifted by the codec's delay so that new frame j decodes to fed frame j.

    ``before``/``after``: input frames of copied audio that sit right before/after the run in the output
    (fed to warm the encoder up / let it look ahead, then thrown away); None where the output starts or
    ends, or a cut is (silence is fed there). Input frames that follow one another are decoded in one go.
    """
    n = mp3.samples_per_frame
    channels = mp3.first.channels
    wanted: list[tuple[int, int, Piece | None]] = []
    if before is not None:
        wanted.append((max(before[0], before[1] - warmup_frames(mp3)), before[1], None))
    wanted += [(piece.lo, piece.hi, piece) for piece in run]
    if after is not None:
        wanted.append((after[0], min(after[1], after[0] + TRAIL_FRAMES), None))
    decoded: list[np.ndarray] = []
    i = 0
    while i < len(wanted):
        j = i + 1
        while j < len(wanted) and wanted[j][0] == wanted[j - 1][1]:
            j += 1
        pcm = decode_frames(mp3, wanted[i][0], wanted[j - 1][1])
        for lo, hi, _ in wanted[i:j]:
            decoded.append(pcm[:, (lo - wanted[i][0]) * n : (hi - wanted[i][0]) * n])
        i = j
    parts = []
    if before is None:
        parts.append(np.zeros((channels, warmup_frames(mp3) * n), np.float32))
    for index, ((_, _, piece), pcm) in enumerate(zip(wanted, decoded)):
        if piece is None:
            if index == 0 and before is not None:  # the warm-up: silence in front where it is short
                pcm = np.concatenate(
                    [np.zeros((channels, warmup_frames(mp3) * n - pcm.shape[1]), np.float32), pcm], axis=1
                )
            parts.append(pcm)
            continue
        length = pcm.shape[1]
        gain = np.ones(length, np.float32)
        fade = max(1, min(fade_samples, length // 2)) if fade_samples > 0 else 0
        times = np.arange(length)
        if piece.fade_in and fade:
            gain = np.minimum(gain, ramp((times + 0.5) / fade))
        if piece.fade_out and fade:
            gain = np.minimum(gain, ramp((length - times - 0.5) / fade))
        parts.append(pcm * gain)
    trail = wanted[-1][1] - wanted[-1][0] if after is not None else 0
    parts.append(np.zeros((channels, (TRAIL_FRAMES - trail) * n), np.float32))
    return np.concatenate(parts, axis=1)[:, LAME_DELAY + DECODER_DELAY :]


def encode_run(mp3: Mp3File, run: list[Piece], pcm: np.ndarray, bit_rate: int) -> list[bytes]:
    """New frames for a run (``pcm`` from stretch_pcm): one per input frame of its pieces, in order."""
    encoded = encode_stretch(mp3, pcm, bit_rate)
    wanted = sum(p.hi - p.lo for p in run)
    warmup = warmup_frames(mp3)
    if len(encoded) < warmup + wanted:
        raise CopyUnsupported("the MP3 encoder returned fewer frames than fed")
    return encoded[warmup : warmup + wanted]


def rebuild(
    mp3: Mp3File, run, before, after, fade_samples: int, bit_rate: int, reservoir: bytes
) -> list[bytes]:
    """The new frames of a run. Where LAME filled them so full (a high bit rate) that even enlarged they cannot
    also carry the next frame's reservoir bytes, the few frames are encoded again at a lower rate."""
    rates = [r * 1000 for r in BITRATES[mp3.first.mpeg1][1:] if r * 1000 <= bit_rate][::-1][:4]
    pcm = stretch_pcm(mp3, run, before, after, fade_samples)
    for attempt, rate in enumerate(rates or [bit_rate]):
        frames = [split_new(f) for f in encode_run(mp3, run, pcm, rate)]
        try:
            return pack_frames(frames, reservoir)
        except CopyUnsupported:
            if attempt == len(rates) - 1:
                raise
    raise CopyUnsupported("a join's re-encoded frames cannot carry the bit reservoir")
