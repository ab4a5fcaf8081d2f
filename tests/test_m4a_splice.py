"""The M4A/AAC copy path: kept packets copied byte for byte, a short re-encode at each join, moov first."""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from adcut.core.segments import Segment
from adcut.media.cut import cut_episode
from adcut.media.decode import decode_original
from adcut.media.encode import write_audio
from adcut.media.m4a_splice import PACKET

SR = 44100
FRAME = PACKET / SR  # one AAC frame, 23 ms


def content_signal(seconds: float, seed: int) -> np.ndarray:
    """Stereo speech-band audio with no silence (every stretch can be found again by cross-correlation)."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    noise = np.convolve(rng.normal(0, 1, n + 15), np.ones(16) / 16, mode="valid")[
        :n
    ]  # low-passed: little at 3 kHz
    voice = (
        0.25
        * np.sin(2 * np.pi * (180 + 40 * np.sin(2 * np.pi * 0.7 * t)) * t)
        * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    )
    left = voice + 0.35 * noise
    return np.stack([left, 0.8 * left + 0.1 * np.roll(noise, 500)]).astype(np.float32)


def ad_signal(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return np.stack([0.5 * np.sin(2 * np.pi * 3000 * t)] * 2).astype(np.float32)


def episode(parts: list[tuple[str, float]], seed: int = 0):
    """Audio and segments for ``[(label, seconds), ...]``."""
    pieces, segments, t = [], [], 0.0
    for i, (label, seconds) in enumerate(parts):
        pieces.append(ad_signal(seconds) if label == "ad" else content_signal(seconds, seed + i))
        segments.append(Segment(t, t + seconds, label))
        t += seconds
    return np.concatenate(pieces, axis=1), segments


def locate(chunk: np.ndarray, hay: np.ndarray) -> int:
    n = len(hay) + len(chunk)
    size = 1 << (n - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(hay, size) * np.conj(np.fft.rfft(chunk, size)), size)[
        : len(hay) - len(chunk) + 1
    ]
    return int(np.argmax(corr))


def packets(path: Path) -> list[tuple[int, bytes]]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return [(p.pts, bytes(p)) for p in container.demux(stream) if p.pts is not None]


def top_level_atoms(path: Path) -> list[bytes]:
    data, atoms, offset = path.read_bytes(), [], 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        if size == 1:
            size = struct.unpack(">Q", data[offset + 8 : offset + 16])[0]
        atoms.append(kind)
        offset += size if size else len(data)
    return atoms


def ffmpeg_errors(path: Path) -> str:
    run = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True, text=True
    )
    return run.stderr + ("" if run.returncode == 0 else f"exit {run.returncode}")


def tone_level(x: np.ndarray, freq: float) -> float:
    t = np.arange(len(x)) / SR
    return float(np.abs(np.dot(x, np.exp(-2j * np.pi * freq * t))) * 2 / len(x))


def check_cut(
    source: Path, out: Path, segments: list[Segment], original: np.ndarray, expect_copied: float = 0.9
):
    """The acceptance checks: clean decode, moov first, copied packets, timing, joins, no ad audio."""
    if shutil.which("ffmpeg"):
        assert ffmpeg_errors(out) == ""
    assert top_level_atoms(out).index(b"moov") < top_level_atoms(out).index(b"mdat")
    _, cut = decode_original(out)
    spans = [(s.start, s.end) for s in segments if s.label != "ad"]
    kept = sum(b - a for a, b in spans)
    assert abs(cut.shape[1] / SR - kept) <= 0.05  # decoders also play the last frame's padding
    if shutil.which("ffprobe"):
        probed = subprocess.run(
            ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(out)],
            capture_output=True,
            text=True,
        ).stdout
        assert abs(float(probed) - kept) <= FRAME

    # Byte-identical packets: all but a few around each join are the input's own.
    source_packets = {hashlib.sha1(data).digest() for _, data in packets(source)}
    out_packets = packets(out)
    new = [pts for pts, data in out_packets if hashlib.sha1(data).digest() not in source_packets]
    joins_out, t = [], 0.0
    for a, b in spans:
        if a > 0:
            joins_out.append(t)
        t += b - a
    if spans[-1][1] < segments[-1].end - 1e-6:
        joins_out.append(t)
    assert len(new) <= 8 * max(1, len(joins_out))
    for pts in new:  # every re-encoded packet lies next to a join: the fade (30 ms) and a packet or two
        assert min(abs(pts / SR - j) for j in joins_out) <= 5 * FRAME, pts / SR
    assert len(out_packets) - len(new) >= expect_copied * (len(out_packets) - 8 * len(joins_out))

    # Timing: each kept span sits where the segment list says (within one AAC frame), and the audio on
    # both sides of each join (re-encoded) matches the original's.
    t = 0.0
    for a, b in spans:
        for at in (a + 0.06, (a + b) / 2, b - 0.2):
            if at < a or at + 0.12 > b:
                continue
            chunk = original[0, int(at * SR) : int(at * SR) + int(0.1 * SR)]
            expected = int((t + at - a) * SR)
            window = cut[0, max(0, expected - 4 * PACKET) : expected + 4 * PACKET + len(chunk)]
            found = max(0, expected - 4 * PACKET) + locate(chunk, window)
            assert abs(found - expected) <= PACKET, (a, at, found - expected)
            got = cut[0, found : found + len(chunk)]
            assert np.corrcoef(chunk, got)[0, 1] > 0.98, (a, at)
        t += b - a

    for j in joins_out:
        i = int(j * SR)
        near = cut[:, max(0, i - int(0.05 * SR)) : i + int(0.05 * SR)]
        around = cut[:, max(0, i - SR // 2) : i + SR // 2]
        assert np.abs(near).max() <= np.abs(around).max() + 1e-6  # no click
        # No ad audio: the ads' 3 kHz tone is absent at the join.
        assert tone_level(near[0], 3000) < 0.01 * 0.5


def test_m4a_cut_copies_packets_and_reencodes_only_the_joins(tmp_path):
    signal, segments = episode(
        [("content", 6.3), ("ad", 3.0), ("content", 7.7), ("ad", 2.2), ("content", 5.05)]
    )
    path = tmp_path / "show.m4a"
    write_audio(path, signal, SR, bit_rate=128000, metadata={"title": "Episode 7", "artist": "The Show"})
    before = path.read_bytes()
    result = cut_episode(path, segments, tmp_path / "show.adcut.m4a")
    assert result.method == "copy-aac"
    assert path.read_bytes() == before
    assert abs(result.kept_seconds - 19.05) <= FRAME and abs(result.removed_seconds - 5.2) <= FRAME
    _, original = decode_original(path)
    check_cut(path, result.path, segments, original)
    import av

    with av.open(str(result.path)) as container:
        assert (
            container.metadata.get("title") == "Episode 7" and container.metadata.get("artist") == "The Show"
        )
        first = next(p for p in container.demux(container.streams.audio[0]))
        assert first.pts < 0  # the encoder priming is still there (and trimmed by the edit list)


def test_m4a_with_ads_at_both_ends_cover_art_and_chapters(tmp_path):
    import av

    signal, segments = episode(
        [("ad", 2.5), ("content", 8.0), ("ad", 1.5), ("content", 6.0), ("ad", 2.0)], seed=5
    )
    plain = tmp_path / "plain.m4a"
    write_audio(plain, signal, SR, bit_rate=96000)
    # Add a cover and chapters (the mp4 muxer with the M4A brand, as the re-encode path writes them).
    path = tmp_path / "show.m4a"
    image = tmp_path / "cover.jpg"
    with av.open(str(image), "w", format="image2") as out:
        stream = out.add_stream("mjpeg", rate=1)
        stream.width = stream.height = 16
        stream.pix_fmt = "yuvj420p"
        frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 90, np.uint8), format="rgb24").reformat(
            format="yuvj420p"
        )
        for packet in list(stream.encode(frame)) + list(stream.encode(None)):
            out.mux(packet)
    with (
        av.open(str(plain)) as inp,
        av.open(str(image)) as cover,
        av.open(str(path), "w", format="mp4", options={"brand": "M4A "}) as out,
    ):
        audio = out.add_stream_from_template(inp.streams.audio[0])
        picture = out.add_stream_from_template(cover.streams.video[0])
        picture.disposition = av.stream.Disposition.attached_pic
        out.set_chapters(
            [
                {
                    "id": 1,
                    "start": 0,
                    "end": 10500,
                    "time_base": Fraction(1, 1000),
                    "metadata": {"title": "One"},
                },
                {
                    "id": 2,
                    "start": 12000,
                    "end": 20000,
                    "time_base": Fraction(1, 1000),
                    "metadata": {"title": "Two"},
                },
            ]
        )
        for packet in cover.demux(cover.streams.video[0]):
            if packet.size:
                packet.stream = picture
                out.mux(packet)
        for packet in inp.demux(inp.streams.audio[0]):
            if packet.dts is not None:
                packet.stream = audio
                out.mux(packet)
    jpeg = image.read_bytes()
    result = cut_episode(path, segments, tmp_path / "show.adcut.m4a")
    assert result.method == "copy-aac" and result.cover_art and result.chapters == 2
    _, original = decode_original(path)
    check_cut(path, result.path, segments, original, expect_copied=0.8)
    with av.open(str(result.path)) as container:
        pictures = [s for s in container.streams.video if s.disposition & av.stream.Disposition.attached_pic]
        assert len(pictures) == 1
        assert bytes(next(container.demux(pictures[0]))) == jpeg
        chapters = container.chapters()
        starts = [float(c["start"] * c["time_base"]) for c in chapters]
        assert starts == pytest.approx([0.0, 8.0], abs=0.05)


def test_real_recordings_reencoded_to_m4a(shared_data, tmp_path):
    """Speech (content) around music (the ad), from ../shared/data, at 44.1 kHz stereo."""
    from adcut.media.decode import decode

    speech = np.stack(
        [decode(shared_data / "speech" / "diarizationExample.wav", SR)[: 12 * SR]] * 2
    )  # mono, mixed down
    music = np.stack(
        [decode(shared_data / "music" / "Kevin_MacLeod_-_Vibe_Ace.hq.ogg", SR)[5 * SR : 11 * SR]] * 2
    )
    signal = np.concatenate([speech[:, : 7 * SR], music, speech[:, 7 * SR :]], axis=1)
    segments = [Segment(0.0, 7.0, "content"), Segment(7.0, 13.0, "ad"), Segment(13.0, 18.0, "content")]
    path = tmp_path / "real.m4a"
    write_audio(path, signal, SR, bit_rate=128000)
    result = cut_episode(path, segments, tmp_path / "real.adcut.m4a")
    assert result.method == "copy-aac"
    if shutil.which("ffmpeg"):
        assert ffmpeg_errors(result.path) == ""
    _, original = decode_original(path)
    _, cut = decode_original(result.path)
    assert abs(cut.shape[1] / SR - 12.0) <= 0.05
    # The speech after the music sits right after the speech before it (within one frame), and matches.
    chunk = original[0, int(14.0 * SR) : int(15.0 * SR)]
    found = locate(chunk, cut[0])
    assert abs(found - 8.0 * SR) <= PACKET
    assert np.corrcoef(chunk, cut[0, found : found + len(chunk)])[0, 1] > 0.98


def test_mp4_with_other_audio_falls_back_to_reencoding_with_one_warning(tmp_path, caplog):
    import logging

    import av

    from adcut.media.encode import StreamEncoder, open_audio_stream

    path = tmp_path / "mp3inside.mp4"
    with av.open(str(path), "w", format="mp4") as container:
        stream = open_audio_stream(container, "libmp3lame", SR, "stereo", 128000)
        writer = StreamEncoder(container, stream, "fltp", "stereo", SR)
        writer.push(content_signal(6.0, 2))
        writer.finish()
    segments = [Segment(0.0, 2.0, "content"), Segment(2.0, 3.0, "ad"), Segment(3.0, 6.0, "content")]
    with caplog.at_level(logging.WARNING, logger="adcut.media.cut"):
        result = cut_episode(path, segments, tmp_path / "out.mp4")
    assert result.method == "reencode" and abs(result.kept_seconds - 5.0) <= 0.03
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "mp3" in warnings[0] and "AAC-LC only" in warnings[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mp3inside.mp4", "out.mp4"]
