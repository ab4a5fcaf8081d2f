"""The cut episode: kept duration, same format, fades only on the kept side, tags, cover art, chapters."""

from __future__ import annotations

import hashlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from adcut.core.segments import Segment
from adcut.demo.synth import EpisodeSpec
from adcut.errors import OutputError
from adcut.media.cut import cut_episode, cut_path
from adcut.media.decode import decode_original, probe
from adcut.media.encode import write_audio
from adcut.media.timeline import kept_spans, retime, retime_chapters

SR = 16000


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tone(freq, seconds, amplitude=0.5):
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def noisy_ad_between_tones(tmp_path, suffix, **write_kwargs):
    """5 s tone, 3 s loud noise (the ad), 4 s tone; returns path, segments and the signal."""
    rng = np.random.default_rng(0)
    signal = np.concatenate(
        [tone(440, 5.0), 0.9 * rng.uniform(-1, 1, 3 * SR).astype(np.float32), tone(440, 4.0)]
    )
    path = tmp_path / f"tones{suffix}"
    write_audio(path, signal, SR, **write_kwargs)
    segments = [Segment(0.0, 5.0, "content"), Segment(5.0, 8.0, "ad"), Segment(8.0, 12.0, "content")]
    return path, segments, signal


def add_cover_and_chapters(source: Path, target: Path, chapters) -> bytes:
    """Remux ``source`` into ``target`` with a small JPEG cover and the given chapters; returns the JPEG."""
    import av

    image = target.with_suffix(".jpg")
    out = av.open(str(image), "w", format="image2")
    stream = out.add_stream("mjpeg", rate=1)
    stream.width = stream.height = 16
    stream.pix_fmt = "yuvj420p"
    frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 100, np.uint8), format="rgb24").reformat(
        format="yuvj420p"
    )
    for packet in stream.encode(frame):
        out.mux(packet)
    for packet in stream.encode(None):
        out.mux(packet)
    out.close()
    jpeg = image.read_bytes()

    inp, cover = av.open(str(source)), av.open(str(image))
    # .m4a: the mp4 muxer (brand M4A), as PyAV's ipod muxer refuses a JPEG stream
    out = av.open(
        str(target),
        "w",
        **({"format": "mp4", "options": {"brand": "M4A "}} if target.suffix == ".m4a" else {}),
    )
    for key, value in inp.metadata.items():
        out.metadata[key] = value
    audio = out.add_stream_from_template(inp.streams.audio[0])
    picture = out.add_stream_from_template(cover.streams.video[0])
    picture.disposition = av.stream.Disposition.attached_pic
    out.set_chapters(
        [
            {
                "id": i + 1,
                "start": int(a * 1000),
                "end": int(b * 1000),
                "time_base": Fraction(1, 1000),
                "metadata": {"title": t},
            }
            for i, (a, b, t) in enumerate(chapters)
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
    out.close()
    inp.close()
    cover.close()
    image.unlink()
    return jpeg


# AAC pads its last frame to 1024 samples and the MP4 written keeps that padding (23 ms at 44.1 kHz).
@pytest.mark.parametrize(
    "suffix, bit_rate, rate",
    [
        (".wav", None, 16000),
        (".mp3", 64000, 16000),
        (".flac", None, 16000),
        (".opus", None, 48000),
        (".m4a", 96000, 44100),
    ],
)
def test_cut_keeps_the_content_time_in_the_same_format(make_episode, tmp_path, suffix, bit_rate, rate):
    spec = EpisodeSpec(40.0, ((10.0, 17.5), (30.0, 36.0)))
    path, truth = make_episode("ep", spec, suffix=suffix, bit_rate=bit_rate, sample_rate=rate)
    before = sha(path)
    result = cut_episode(path, truth, cut_path(path))
    assert result.path == tmp_path / f"ep.adcut{suffix}"
    kept = sum(s.duration for s in truth if s.label == "content")
    # MP3 is cut on frame boundaries (576 samples at 16 kHz), each ad edge rounded outward: up to a frame per edge
    lost = 4 * 576 / rate if suffix == ".mp3" else 0.0
    assert kept - lost - 0.01 <= result.kept_seconds <= kept + 0.01
    info_in, info_out = probe(path), probe(result.path)
    assert (info_out.codec, info_out.sample_rate, info_out.channels) == (
        info_in.codec,
        info_in.sample_rate,
        info_in.channels,
    )
    if bit_rate:
        assert abs(info_out.bit_rate - info_in.bit_rate) <= 0.25 * info_in.bit_rate
    _, samples = decode_original(result.path)
    assert samples.shape[1] / info_out.sample_rate == pytest.approx(result.kept_seconds, abs=0.05)
    assert sha(path) == before  # the input is never touched
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["ep" + suffix, "ep.txt", "ep.adcut" + suffix]
    )


def test_stereo_44k_mp3_stays_stereo_44k(tmp_path):
    signal = np.stack([tone(300, 6.0), tone(500, 6.0)])
    path = tmp_path / "stereo.mp3"
    write_audio(path, signal, 44100, bit_rate=128000)
    out = cut_episode(
        path, [Segment(0, 2, "content"), Segment(2, 3, "ad"), Segment(3, 6, "content")], tmp_path / "o.mp3"
    )
    info = probe(out.path)
    assert (info.sample_rate, info.channels, info.codec) == (44100, 2, "mp3float")
    assert 110000 <= info.bit_rate <= 150000


def test_wav_cut_has_fades_on_the_content_side_and_no_ad_sample(tmp_path):
    path, segments, signal = noisy_ad_between_tones(tmp_path, ".wav")
    out = cut_episode(path, segments, tmp_path / "out.wav", fade_seconds=0.03)
    _, samples = decode_original(out.path)
    got = samples[0]
    cut_at, fade = 5 * SR, int(0.03 * SR)
    assert len(got) == 9 * SR
    # Away from the cut the content is unchanged.
    np.testing.assert_allclose(got[: cut_at - fade], signal[: cut_at - fade], atol=1e-4)
    np.testing.assert_allclose(got[cut_at + fade :], signal[8 * SR + fade :], atol=1e-4)
    # Around the cut: the content, faded (gain within [0, 1]) -- never a sample of the noise.
    before, after = got[cut_at - fade : cut_at], got[cut_at : cut_at + fade]
    assert np.all(np.abs(before) <= np.abs(signal[cut_at - fade : cut_at]) + 1e-4)
    assert np.all(np.abs(after) <= np.abs(signal[8 * SR : 8 * SR + fade]) + 1e-4)
    assert np.all(np.sign(before) * np.sign(signal[cut_at - fade : cut_at]) >= 0)  # the tone, not noise
    assert abs(got[cut_at - 1]) < 0.01 and abs(got[cut_at]) < 0.01  # silent at the junction
    assert np.max(np.abs(got[cut_at - 2 * fade : cut_at - fade])) > 0.45  # full level before the fade


def test_mp3_cut_leaves_no_ad_energy_near_the_cut(tmp_path):
    path, segments, _ = noisy_ad_between_tones(tmp_path, ".mp3", bit_rate=128000)
    out = cut_episode(path, segments, tmp_path / "out.mp3")
    _, samples = decode_original(out.path)
    got = samples[0]

    def high_band_energy(x):
        spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
        freqs = np.fft.rfftfreq(len(x), 1 / SR)
        return spectrum[freqs > 2000].sum()

    window = int(0.1 * SR)
    near_cut = got[5 * SR - window : 5 * SR + window]
    _, original = decode_original(path)
    noise = original[0][6 * SR : 6 * SR + 2 * window]
    assert high_band_energy(near_cut) < 0.01 * high_band_energy(noise)
    # cut on frame boundaries (36 ms at 16 kHz), each edge of the ad rounded outward
    assert 9.0 - 2 * 576 / SR - 0.01 <= len(got) / SR <= 9.0 + 0.01


@pytest.mark.parametrize("suffix", [".mp3", ".m4a"])
def test_tags_cover_art_and_chapters_follow_the_cut(tmp_path, suffix):
    import av

    plain = tmp_path / f"plain{suffix}"
    signal = np.concatenate([tone(440, 5.0), tone(880, 3.0), tone(440, 4.0)])
    write_audio(plain, signal, SR, bit_rate=64000, metadata={"title": "Episode 7", "artist": "Host"})
    path = tmp_path / f"tagged{suffix}"
    if suffix == ".m4a":  # MP4 chapters follow one another (each ends where the next starts): none nested
        chapters_in = [
            (0, 4, "Intro"),
            (4, 5.2, "Sponsor and talk"),
            (5.2, 7.9, "Sponsor"),
            (7.9, 12, "Outro"),
        ]
        expected = [("Intro", 0.0, 4.0), ("Sponsor and talk", 4.0, 5.0), ("Outro", 5.0, 9.0)]
    else:
        chapters_in = [(0, 4, "Intro"), (4, 9, "Sponsor and talk"), (5.2, 7.9, "Sponsor"), (9, 12, "Outro")]
        # The chapter inside the ad is gone; the one spanning it is shortened; later ones move back by 3 s.
        expected = [("Intro", 0.0, 4.0), ("Sponsor and talk", 4.0, 6.0), ("Outro", 6.0, 9.0)]
    jpeg = add_cover_and_chapters(plain, path, chapters_in)
    before = sha(path)
    segments = [Segment(0, 5, "content"), Segment(5, 8, "ad"), Segment(8, 12, "content")]
    result = cut_episode(path, segments, cut_path(path))
    assert sha(path) == before
    assert result.cover_art and result.chapters == 3
    container = av.open(str(result.path))
    try:
        assert container.metadata["title"] == "Episode 7" and container.metadata["artist"] == "Host"
        pictures = [s for s in container.streams.video if s.disposition & av.stream.Disposition.attached_pic]
        assert len(pictures) == 1
        packet = next(p for p in container.demux(pictures[0]) if p.size)
        assert bytes(packet) == jpeg
        chapters = [
            (c["metadata"]["title"], float(c["start"] * c["time_base"]), float(c["end"] * c["time_base"]))
            for c in container.chapters()
        ]
    finally:
        container.close()
    # MP3 is cut on frame boundaries (36 ms at 16 kHz): times move by at most a frame per cut edge
    tolerance = 2 * 576 / SR if suffix == ".mp3" else 0.0005
    assert [c[0] for c in chapters] == [e[0] for e in expected]
    for (_, start, end), (_, want_start, want_end) in zip(chapters, expected):
        assert start == pytest.approx(want_start, abs=tolerance) and end == pytest.approx(
            want_end, abs=tolerance
        )


def test_retime_maps_removed_time_to_the_cut_point():
    spans = kept_spans(
        [Segment(0, 10, "content"), Segment(10, 20, "ad"), Segment(20, 30, "content")], ("ad",), 30
    )
    assert spans == [(0, 10), (20, 30)]
    assert [retime(t, spans) for t in (0, 5, 10, 15, 20, 25, 30)] == [0, 5, 10, 10, 10, 15, 20]
    chapters = retime_chapters(
        [
            {"start": 12, "end": 18, "time_base": Fraction(1), "metadata": {"title": "ad only"}},
            {"start": 18, "end": 30, "time_base": Fraction(1), "metadata": {"title": "after"}},
        ],
        spans,
        30,
    )
    assert [(c["metadata"]["title"], c["start"], c["end"]) for c in chapters] == [("after", 10000, 20000)]


def test_never_overwrites_the_input(tmp_path):
    path, segments, _ = noisy_ad_between_tones(tmp_path, ".wav")
    before = sha(path)
    with pytest.raises(OutputError, match="refusing to overwrite the input"):
        cut_episode(path, segments, path)
    assert sha(path) == before


def test_ogg_with_a_cover_art_stream_is_cut_without_it(shared_data, tmp_path):
    # A real Ogg Vorbis file whose cover art is a picture stream: FFmpeg's Ogg muxer refuses such a
    # stream, so the cut must leave the picture out rather than fail.
    import shutil

    path = tmp_path / "vibe.ogg"
    shutil.copy(shared_data / "music" / "Kevin_MacLeod_-_Vibe_Ace.hq.ogg", path)
    duration = probe(path).duration
    result = cut_episode(
        path,
        [Segment(0, 20, "content"), Segment(20, 30, "ad"), Segment(30, duration, "content")],
        cut_path(path),
    )
    assert not result.cover_art
    info = probe(result.path)
    assert (info.codec, info.channels, info.sample_rate) == ("vorbis", 2, 44100)
    assert abs(info.duration - (duration - 10)) < 0.05
