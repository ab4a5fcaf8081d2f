"""The WAV copy path: kept sample frames copied byte for byte, fades as the re-encode path makes them, chunks kept."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from adcut.core.segments import Segment
from adcut.errors import CopyUnsupported
from adcut.media.cut import cut_episode, reencode_episode
from adcut.media.decode import decode_original, probe
from adcut.media.wav_splice import read_layout

SR = 8000
SEGMENTS = [
    Segment(0.0, 2.0, "content"),
    Segment(2.0, 3.5, "ad"),
    Segment(3.5, 6.0, "content"),
    Segment(6.0, 6.6, "ad"),
    Segment(6.6, 8.0, "content"),
]
KEPT = [(0, 16000), (28000, 48000), (52800, 64000)]  # sample frames of the content at 8 kHz
FADE = 240  # 0.03 s


def chunk(cid: bytes, body: bytes) -> bytes:
    return cid + struct.pack("<I", len(body)) + body + (b"\0" if len(body) & 1 else b"")


def make_wav(
    path: Path, raw: bytes, *, tag: int, bits: int, channels: int, extra: bytes = b"", cue: bytes = b""
) -> None:
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, SR, SR * align, align, bits)
    body = b"WAVE" + chunk(b"fmt ", fmt) + extra + cue + chunk(b"data", raw)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)


def info_chunk() -> bytes:
    entry = chunk(b"INAM", b"Episode 12\0") + chunk(b"IART", b"The Show\0")
    return chunk(b"LIST", b"INFO" + entry)


def frames_of(raw: bytes, align: int) -> list[bytes]:
    return [raw[i : i + align] for i in range(0, len(raw), align)]


@pytest.mark.parametrize("tag, bits, dtype", [(1, 16, "<i2"), (1, 24, None), (3, 32, "<f4"), (1, 8, "u1")])
def test_kept_frames_are_the_input_bytes_and_fades_match_the_reencode_path(tmp_path, tag, bits, dtype):
    rng = np.random.default_rng(1)
    channels = 2
    n = 8 * SR
    signal = 0.6 * np.sin(2 * np.pi * 220 * np.arange(n) / SR)[:, None] + 0.2 * rng.uniform(
        -1, 1, (n, channels)
    )
    if bits == 24:
        ints = np.round(signal * (2**23 - 1)).astype(np.int32).reshape(-1)
        raw = (
            np.stack([ints & 0xFF, (ints >> 8) & 0xFF, (ints >> 16) & 0xFF], axis=1)
            .astype(np.uint8)
            .tobytes()
        )
    elif tag == 3:
        raw = signal.astype(dtype).tobytes()
    elif bits == 8:
        raw = np.round(signal * 127 + 128).astype(np.uint8).tobytes()
    else:
        raw = np.round(signal * 32767).astype(dtype).tobytes()
    path = tmp_path / "show.wav"
    make_wav(path, raw, tag=tag, bits=bits, channels=channels, extra=info_chunk())
    before = path.read_bytes()

    result = cut_episode(path, SEGMENTS, tmp_path / "show.adcut.wav")
    assert result.method == "copy-wav"
    assert path.read_bytes() == before
    assert result.kept_seconds == pytest.approx(5.9) and result.removed_seconds == pytest.approx(2.1)
    out = (tmp_path / "show.adcut.wav").read_bytes()
    assert out[:4] == b"RIFF" and struct.unpack("<I", out[4:8])[0] == len(out) - 8
    assert info_chunk() in out  # the tags, as they were
    layout = read_layout(tmp_path / "show.adcut.wav")
    align = channels * bits // 8
    assert layout.frames == 47200
    got = frames_of(out[layout.data_offset : layout.data_offset + layout.data_bytes], align)
    want: list[bytes] = []
    cuts_in, cuts_out = {28000, 52800}, {16000, 48000}
    for a, b in KEPT:
        want += frames_of(raw[a * align : b * align], align)
    # Every frame away from a fade is the input's, byte for byte.
    position, differ = 0, []
    for a, b in KEPT:
        for i in range(b - a):
            inside = (a in cuts_in and i < FADE) or (b in cuts_out and i >= b - a - FADE)
            if not inside and got[position + i] != want[position + i]:
                differ.append(position + i)
        position += b - a
    assert differ == []
    # The fades are the re-encode path's (to one step of the sample format).
    reencode_episode(path, probe(path), SEGMENTS, tmp_path / "re.wav")
    _, copied = decode_original(tmp_path / "show.adcut.wav")
    _, reencoded = decode_original(tmp_path / "re.wav")
    assert copied.shape == reencoded.shape
    step = 2.0 / 2 ** min(bits, 24) if tag == 1 else 1e-6
    assert np.abs(copied - reencoded).max() <= max(step * 1.01, 1 / 32767 * 1.01)
    # No ad audio: at each join the output starts from silence.
    assert np.abs(copied[:, 16000]).max() < 0.01 and np.abs(copied[:, 16000 + 20000 - 1]).max() < 0.01
    if shutil.which("ffmpeg"):
        run = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(tmp_path / "show.adcut.wav"), "-f", "null", "-"],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0 and run.stderr == ""


def test_cue_points_are_retimed_and_fact_counts_kept_frames(tmp_path):
    raw = np.zeros(8 * SR, "<i2").tobytes()
    cue = chunk(
        b"cue ",
        struct.pack("<I", 2)
        + struct.pack("<I I 4s I I I", 1, 4000, b"data", 0, 0, 4000)
        + struct.pack("<I I 4s I I I", 2, 40000, b"data", 0, 0, 40000),
    )
    fact = chunk(b"fact", struct.pack("<I", 8 * SR))
    path = tmp_path / "show.wav"
    make_wav(path, raw, tag=1, bits=16, channels=1, extra=fact, cue=cue)
    cut_episode(path, SEGMENTS, tmp_path / "out.wav")
    out = (tmp_path / "out.wav").read_bytes()
    layout = read_layout(tmp_path / "out.wav")
    chunks = {cid: out[off : off + n] for cid, off, n in layout.chunks}
    assert struct.unpack("<I", chunks[b"fact"])[0] == 47200
    points = [struct.unpack("<I I 4s I I I", chunks[b"cue "][4 + 24 * i : 28 + 24 * i]) for i in range(2)]
    assert [p[5] for p in points] == [4000, 40000 - 12000]


def test_compressed_wav_is_not_copied(tmp_path):
    path = tmp_path / "alaw.wav"
    make_wav(path, bytes(800), tag=6, bits=8, channels=1)
    with pytest.raises(CopyUnsupported, match="not copied"):
        read_layout(path)


def test_streamed_wav_with_unknown_data_size(tmp_path):
    raw = (np.arange(8 * SR) % 1000).astype("<i2").tobytes()
    path = tmp_path / "piped.wav"
    make_wav(path, raw, tag=1, bits=16, channels=1)
    data = bytearray(path.read_bytes())
    at = data.index(b"data")
    data[at + 4 : at + 8] = b"\xff\xff\xff\xff"
    data[4:8] = b"\xff\xff\xff\xff"
    path.write_bytes(bytes(data))
    result = cut_episode(path, SEGMENTS, tmp_path / "out.wav")
    assert result.method == "copy-wav"
    assert read_layout(tmp_path / "out.wav").frames == 47200


def test_real_recording_wav(shared_data, tmp_path):
    """A real 16 kHz recording from ../shared/data: the kept samples are the input's, the cut is clean."""
    source = shared_data / "speech" / "diarizationExample.wav"
    path = tmp_path / "real.wav"
    shutil.copyfile(source, path)
    segments = [Segment(0.0, 10.0, "content"), Segment(10.0, 21.5, "ad"), Segment(21.5, 40.0, "content")]
    result = cut_episode(path, segments, tmp_path / "real.adcut.wav")
    assert result.method == "copy-wav" and result.kept_seconds == pytest.approx(28.5, abs=1e-3)
    _, original = decode_original(path)
    _, cut = decode_original(result.path)
    rate = probe(path).sample_rate
    fade = int(0.03 * rate)
    a, b = int(10.0 * rate), int(21.5 * rate)
    assert np.array_equal(cut[:, : a - fade], original[:, : a - fade])
    end = int(40.0 * rate) - fade  # the labels stop at 40 s: a cut (and a fade) there too
    assert np.array_equal(cut[:, a + fade : a + end - b], original[:, b + fade : end])
    if shutil.which("ffmpeg"):
        run = subprocess.run(
            ["ffmpeg", "-v", "error", "-i", str(result.path), "-f", "null", "-"],
            capture_output=True,
            text=True,
        )
        assert run.returncode == 0 and run.stderr == ""
