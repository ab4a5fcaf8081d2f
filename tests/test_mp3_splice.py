"""The cut's dispatcher (copy paths by format, falling back to re-encoding) and the MP3 copy path."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from adcut.cli import main
from adcut.core.segments import Segment
from adcut.demo.synth import EpisodeSpec, episode_segments, render_episode
from adcut.errors import CopyUnsupported
from adcut.media import cut as cutmod
from adcut.media.cut import cut_episode
from adcut.media.decode import decode_original, probe
from adcut.media.encode import write_audio
from adcut.media.mp3.frames import main_data_begin, read_mp3
from adcut.media.mp3.plan import kept_frames
from adcut.media.mp3.xing import crc16, crc16_fast


def _refuse(path, info, segments, tmp, out_path, **kwargs):
    raise CopyUnsupported("test copy path refuses")


def test_a_copy_path_that_gives_up_falls_back_to_reencoding_with_one_warning(
    make_episode, tmp_path, monkeypatch, caplog
):
    path, _ = make_episode("show", EpisodeSpec(20.0, ((5.0, 10.0),)), suffix=".wav", labels=False)
    monkeypatch.setitem(cutmod.COPY_PATHS, ".wav", ("copy-test", f"{__name__}:_refuse"))
    segments = [Segment(0.0, 5.0, "content"), Segment(5.0, 10.0, "ad"), Segment(10.0, 20.0, "content")]
    with caplog.at_level(logging.WARNING, logger="adcut.media.cut"):
        result = cut_episode(path, segments, tmp_path / "show.adcut.wav")
    assert result.method == "reencode"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "re-encoding the whole episode" in warnings[0].getMessage()
    assert "test copy path refuses" in warnings[0].getMessage()
    assert decode_original(result.path)[1].shape[1] / probe(result.path).sample_rate == pytest.approx(
        15.0, abs=0.01
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["show.adcut.wav", "show.wav"]  # no temporary left


def test_reencode_forces_the_whole_file_path_and_the_json_says_so(make_episode, random_checkpoint, tmp_path):
    path, _ = make_episode(
        "show", EpisodeSpec(40.0, ((10.0, 25.0),)), suffix=".mp3", labels=False, bit_rate=64000
    )
    model = random_checkpoint(hidden_size=8, num_layers=1)
    assert main(["-q", "process", str(path), "--model", str(model), "--reencode"]) == 0
    settings = json.loads((tmp_path / "show.adcut.json").read_text())["settings"]
    assert settings["cut_method"] in ("reencode", None)  # None: an untrained model may call it all ad


# ---------------------------------------------------------------------------------------------- the MP3 copy path


needs_tools = pytest.mark.skipif(
    not all(shutil.which(t) for t in ("ffmpeg", "ffprobe", "mpg123", "mp3val")),
    reason="ffmpeg, ffprobe, mpg123 and mp3val are needed",
)
SPEC = EpisodeSpec(36.0, ((6.0, 14.3), (22.71, 27.05)))


def make_mp3(
    tmp_path: Path,
    name: str,
    *,
    rate=44100,
    channels=2,
    ffmpeg_args=("-b:a", "128k"),
    spec=SPEC,
    pause=0.4,
    seed=0,
) -> Path:
    """Render ``spec`` (content, ads over a music bed) and encode it with the ffmpeg command line's LAME."""
    mono = render_episode(spec, rate, seed, pause_seconds=pause)
    audio = np.stack([mono, np.roll(mono, 11) * 0.9])[:channels]
    wav = tmp_path / f"{name}.wav"
    write_audio(wav, audio, rate)
    out = tmp_path / f"{name}.mp3"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-c:a", "libmp3lame", *ffmpeg_args, str(out)],
        check=True,
    )
    wav.unlink()
    return out


def validators(path: Path) -> list[str]:
    """What ffmpeg, mpg123 and mp3val complain about (nothing, for a good file)."""
    problems = []
    run = subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True, text=True
    )
    if run.returncode or run.stderr.strip():
        problems.append(f"ffmpeg: {run.stderr.strip()[:300]}")
    run = subprocess.run(["mpg123", "-t", str(path)], capture_output=True, text=True)
    noise = [
        line
        for line in run.stderr.splitlines()
        if any(w in line.lower() for w in ("error", "warning", "bad", "fail"))
    ]
    if run.returncode or noise:
        problems.append(f"mpg123: {noise[:3]}")
    run = subprocess.run(["mp3val", str(path)], capture_output=True, text=True)
    noise = [line for line in run.stdout.splitlines() if line.startswith(("WARNING", "PROBLEM", "ERROR"))]
    if noise:
        problems.append(f"mp3val: {noise[:3]}")
    return problems


def ffprobe_duration(path: Path) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(out)


def frame_ranges_kept(inp_mp3, out_mp3) -> list[tuple[int, int, int]]:
    """(output frame, input frame, count) runs where output frames are byte-identical to consecutive input frames."""
    in_hash = {hashlib.sha1(inp_mp3.frame(k)).digest(): k for k in range(len(inp_mp3.offsets))}
    runs = []
    for j in range(len(out_mp3.offsets)):
        k = in_hash.get(hashlib.sha1(out_mp3.frame(j)).digest())
        if k is None:
            continue
        if runs and runs[-1][0] + runs[-1][2] == j and runs[-1][1] + runs[-1][2] == k:
            runs[-1] = (runs[-1][0], runs[-1][1], runs[-1][2] + 1)
        else:
            runs.append((j, k, 1))
    return runs


def check_splice(inp: Path, out: Path, segments, result, *, min_snr=15.0):
    """The acceptance checks of the MP3 copy path; returns the SNR (dB) of the output against the input near the joins."""
    assert result.method == "copy-mp3"
    assert validators(out) == []
    inp_mp3 = read_mp3(inp, inp.read_bytes())
    out_mp3 = read_mp3(out, out.read_bytes())
    n, rate = inp_mp3.samples_per_frame, inp_mp3.first.sample_rate
    assert (out_mp3.first.sample_rate, out_mp3.first.channels, out_mp3.first.mpeg1) == (
        rate,
        inp_mp3.first.channels,
        inp_mp3.first.mpeg1,
    )

    # Decoded length, Xing frame count and ffprobe agree with the kept time.
    _, decoded_out = decode_original(out)
    _, decoded_in = decode_original(inp)
    assert decoded_out.shape[1] / rate == pytest.approx(result.kept_seconds, abs=0.002)
    if out_mp3.xing is not None:
        xing = out.read_bytes()[out_mp3.xing.offset :][: out_mp3.xing.size]
        at = parse_xing_at(xing)
        xing_frames = int.from_bytes(xing[at + 8 : at + 12], "big")
        xing_bytes = int.from_bytes(xing[at + 12 : at + 16], "big")
        assert xing_frames == len(out_mp3.offsets)
        assert xing_bytes == out_mp3.xing.size + sum(out_mp3.sizes)
        trimmed = out_mp3.xing.delay + out_mp3.xing.padding  # the LAME tag's, 0 without one
        assert (xing_frames * n - trimmed) / rate == pytest.approx(result.kept_seconds, abs=0.05)
    # ffprobe counts whole frames (as it does for the input): the kept time plus the encoder delay and padding
    overhead = (out_mp3.xing.delay + out_mp3.xing.padding) / rate if out_mp3.xing is not None else 0.0
    assert ffprobe_duration(out) == pytest.approx(result.kept_seconds + overhead, abs=0.05)

    # Which input frames were kept: runs of byte-identical frames; only the frames at a join are new.
    runs = frame_ranges_kept(inp_mp3, out_mp3)
    copied = sum(r[2] for r in runs)
    remove = [s for s in segments if s.label == "ad"]
    spans = cutmod.kept_spans(segments, ("ad",), max(s.end for s in segments))
    joins = sum(1 for a, b in spans if a > 1e-3) + sum(
        1 for a, b in spans if b < spans[-1][1] - 1e-3 or b < inp_mp3.decoded_samples / rate - 0.05
    )
    new = len(out_mp3.offsets) - copied
    assert new <= 2 * joins * (1 + int(np.ceil(0.03 * rate / n)))
    # every output frame more than two frames from a join is one of the input's (copied runs are long)
    assert all(r[2] > 4 for r in runs)

    # Where each kept span landed: the input's audio, found in the output by correlation, within one frame.
    skip_in, skip_out = inp_mp3.skip, out_mp3.skip
    ranges = kept_frames(inp_mp3, spans)
    out_start = 0
    snrs = []
    for lo, hi in ranges:
        # no ad audio: the range's time holds no removed segment
        t0, t1 = (lo * n - skip_in) / rate, (hi * n - skip_in) / rate
        for ad in remove:
            assert t1 <= ad.start + 1e-6 or t0 >= ad.end - 1e-6, (t0, t1, ad)
        # a second from the middle of the range, located in the output
        mid_in = (lo + hi) // 2 * n - skip_in
        mid_out = out_start + (mid_in + skip_in - lo * n) - skip_out
        ref = decoded_in[0, mid_in : mid_in + rate // 2]
        window = decoded_out[0, mid_out - 2 * n : mid_out + rate // 2 + 2 * n]
        corr = np.correlate(window, ref, mode="valid")
        assert abs(int(np.argmax(corr)) - 2 * n) <= n
        # the audio around each edge matches the input's (faded) audio as closely as a re-encode does
        for edge_in, edge_out in (
            (lo * n - skip_in, out_start - skip_out),
            (hi * n - skip_in, out_start + (hi - lo) * n - skip_out),
        ):
            inside = np.arange(-rate // 10, rate // 10)
            if edge_in == lo * n - skip_in:
                inside = np.arange(0, rate // 5)
            else:
                inside = np.arange(-rate // 5, 0)
            a_in, a_out = edge_in + inside, edge_out + inside
            ok = (a_in >= 0) & (a_in < decoded_in.shape[1]) & (a_out >= 0) & (a_out < decoded_out.shape[1])
            if ok.sum() < rate // 10 or (edge_in <= 0 and lo == 0) or hi == len(inp_mp3.offsets):
                continue
            ref, got = decoded_in[:, a_in[ok]], decoded_out[:, a_out[ok]]
            # fades: compare past the fade, where the audio is the input's again
            fade = int(0.03 * rate)
            keep = np.abs(inside[ok]) > fade if edge_in != lo * n - skip_in else inside[ok] >= fade
            if edge_in != lo * n - skip_in:
                keep = inside[ok] < -fade
            err = got[:, keep] - ref[:, keep]
            snrs.append(10 * np.log10(np.sum(ref[:, keep] ** 2) / max(np.sum(err**2), 1e-12)))
            # no click: the peak within 50 ms of the join is no higher than the kept audio's around it
            near = decoded_out[:, max(0, edge_out - rate // 20) : edge_out + rate // 20]
            around = decoded_out[:, max(0, edge_out - rate // 2) : edge_out + rate // 2]
            assert np.abs(near).max() <= np.abs(around).max() + 1e-6
        out_start += (hi - lo) * n
    assert out_start == len(out_mp3.offsets) * n
    if snrs:
        assert min(snrs) >= min_snr, snrs
    return snrs


def parse_xing_at(frame: bytes) -> int:
    for name in (b"Xing", b"Info"):
        at = frame.find(name)
        if 0 < at < 40:
            return at
    raise AssertionError("no Xing/Info in the first frame")


@needs_tools
@pytest.mark.parametrize(
    "case,rate,channels,args",
    [
        ("cbr-44k-stereo", 44100, 2, ("-b:a", "128k")),
        ("vbr-44k-stereo", 44100, 2, ("-q:a", "4")),
        ("cbr-22k-mono", 22050, 1, ("-b:a", "40k")),
        ("vbr-24k-mono", 24000, 1, ("-q:a", "6")),
        ("cbr-12k-mono-mpeg2.5", 12000, 1, ("-b:a", "24k")),
        ("cbr-48k-no-xing", 48000, 2, ("-b:a", "96k", "-write_xing", "0")),
        ("cbr-44k-320k", 44100, 2, ("-b:a", "320k")),
    ],
)
def test_cut_copies_the_kept_frames_and_rebuilds_the_joins(case, rate, channels, args, tmp_path):
    inp = make_mp3(tmp_path, case, rate=rate, channels=channels, ffmpeg_args=args, pause=0.0)
    segments = episode_segments(SPEC)
    result = cut_episode(inp, segments, tmp_path / "out.mp3")
    # (at 24 kbps LAME's own loss is larger: a lower bar there)
    snrs = check_splice(inp, tmp_path / "out.mp3", segments, result, min_snr=12.0 if "24k" in args else 15.0)
    assert len(snrs) >= 3
    # The bit reservoir was in play: copied frames right after a rebuilt join read bytes from before their
    # header (which the new frames now carry), and they decoded right (check_splice above).
    out = read_mp3(tmp_path / "out.mp3", (tmp_path / "out.mp3").read_bytes())
    after_joins = [j for j, _, _ in frame_ranges_kept(read_mp3(inp, inp.read_bytes()), out) if j > 0]
    assert after_joins and any(main_data_begin(out.frame(j), out.header(j)) > 0 for j in after_joins)


def test_crc16_fast_is_the_lame_tag_crc():
    data = np.random.default_rng(1).integers(0, 256, 1_000_003, dtype=np.uint8).tobytes()
    assert crc16(b"123456789") == 0xBB3D  # CRC-16/ARC check value
    assert crc16_fast([data[:1000], data[1000:700_001], data[700_001:]]) == crc16(data)


def write_tagged(tmp_path: Path, source: Path, chapters, *, id3v2_version="3") -> tuple[Path, bytes]:
    """``source`` with a title, artist, JPEG cover, chapters and an ID3v1 tag, remuxed by the ffmpeg command."""
    import av

    cover = tmp_path / "cover.jpg"
    out = av.open(str(cover), "w", format="image2")
    stream = out.add_stream("mjpeg", rate=1)
    stream.width = stream.height = 16
    stream.pix_fmt = "yuvj420p"
    frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), 90, np.uint8), format="rgb24").reformat(
        format="yuvj420p"
    )
    for packet in [*stream.encode(frame), *stream.encode(None)]:
        out.mux(packet)
    out.close()
    meta = tmp_path / "chapters.txt"
    lines = [";FFMETADATA1", "title=Episode 9", "artist=Host"]
    for start, end, title in chapters:
        lines += [
            "[CHAPTER]",
            "TIMEBASE=1/1000",
            f"START={int(start * 1000)}",
            f"END={int(end * 1000)}",
            f"title={title}",
        ]
    meta.write_text("\n".join(lines) + "\n")
    tagged = tmp_path / "tagged.mp3"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-y",
            "-i",
            str(source),
            "-i",
            str(cover),
            "-i",
            str(meta),
            "-map",
            "0:a",
            "-map",
            "1",
            "-map_metadata",
            "2",
            "-map_chapters",
            "2",
            "-c",
            "copy",
            "-id3v2_version",
            id3v2_version,
            "-write_id3v1",
            "1",
            "-disposition:v",
            "attached_pic",
            str(tagged),
        ],
        check=True,
    )
    return tagged, cover.read_bytes()


@needs_tools
@pytest.mark.parametrize("id3v2_version", ["3", "4"])
def test_tags_cover_art_id3v1_and_chapters_are_carried_over(tmp_path, id3v2_version):
    import av

    source = make_mp3(tmp_path, "plain", ffmpeg_args=("-b:a", "96k"))
    chapters_in = [(0, 5, "Intro"), (5, 16, "Break and talk"), (6.5, 13.5, "Sponsor"), (16, 36, "Main")]
    tagged, jpeg = write_tagged(tmp_path, source, chapters_in, id3v2_version=id3v2_version)
    segments = episode_segments(SPEC)  # ads 6-14.3 and 22.71-27.05
    result = cut_episode(tagged, segments, tmp_path / "out.mp3")
    check_splice(tagged, tmp_path / "out.mp3", segments, result)
    assert result.cover_art and result.chapters == 3
    data = (tmp_path / "out.mp3").read_bytes()
    assert data[:3] == b"ID3" and data[3] == int(id3v2_version)
    assert data[-128:] == tagged.read_bytes()[-128:] and data[-128:-125] == b"TAG"  # ID3v1 kept
    container = av.open(str(tmp_path / "out.mp3"))
    try:
        assert container.metadata["title"] == "Episode 9" and container.metadata["artist"] == "Host"
        pictures = [s for s in container.streams.video if s.disposition & av.stream.Disposition.attached_pic]
        assert len(pictures) == 1 and bytes(next(p for p in container.demux(pictures[0]) if p.size)) == jpeg
        chapters = [
            (c["metadata"]["title"], float(c["start"] * c["time_base"]), float(c["end"] * c["time_base"]))
            for c in container.chapters()
        ]
    finally:
        container.close()
    # The chapter inside the first ad is gone; the one spanning it is shortened; later ones move back.
    expected = [("Intro", 0.0, 5.0), ("Break and talk", 5.0, 6.0 + 16 - 14.3), ("Main", 7.7, 36 - 8.3 - 4.34)]
    assert [c[0] for c in chapters] == [e[0] for e in expected]
    for (_, start, end), (_, want_start, want_end) in zip(chapters, expected):
        assert start == pytest.approx(want_start, abs=0.06) and end == pytest.approx(want_end, abs=0.12)


@needs_tools
@pytest.mark.parametrize("rate,channels,bit_rate", [(22050, 1, "64k"), (44100, 2, "128k")])
def test_damaged_bytes_mid_file_are_skipped_with_a_warning(tmp_path, caplog, rate, channels, bit_rate):
    inp = make_mp3(tmp_path, "clean", ffmpeg_args=("-b:a", bit_rate), rate=rate, channels=channels, pause=0.0)
    data = inp.read_bytes()
    mp3 = read_mp3(inp, data)
    n = mp3.samples_per_frame
    # Two frames lose their tails, and junk (with false sync words) sits where they were: one in content that
    # is kept, one in content after the second ad.
    junk = bytes(np.random.default_rng(3).integers(0, 256, 300, dtype=np.uint8)) + b"\xff\xfb" * 5
    hits = [int(3.0 * rate / n), int(31.0 * rate / n)]
    damaged = (
        data[: mp3.offsets[hits[0]] + 40] + junk + data[mp3.offsets[hits[0] + 1] : mp3.offsets[hits[1]] + 40]
    )
    damaged += junk + data[mp3.offsets[hits[1] + 1] :]
    bad = tmp_path / "damaged.mp3"
    bad.write_bytes(damaged)
    segments = episode_segments(SPEC)
    with caplog.at_level(logging.WARNING):
        result = cut_episode(bad, segments, tmp_path / "out.mp3")
    assert result.method == "copy-mp3"
    assert any("damaged" in r.getMessage() for r in caplog.records)
    assert validators(tmp_path / "out.mp3") == []
    out = read_mp3(tmp_path / "out.mp3", (tmp_path / "out.mp3").read_bytes())
    assert out.damaged == [] and len(out.offsets) < len(mp3.offsets)
    # No burst where the lost bytes were: the frames that needed them are dropped and the gap faded like a cut.
    decoded = decode_original(tmp_path / "out.mp3")[1]
    for t in (3.0, 31.0 - (14.3 - 6.0) - (27.05 - 22.71)):
        at = int(t * rate)
        near = np.abs(decoded[:, at - rate // 10 : at + rate // 10]).max()
        around = np.abs(decoded[:, at - rate : at + rate]).max()
        assert near <= around * 0.999 or near < 0.7, (t, near, around)
        assert near < 1.0


@needs_tools
def test_an_mp3_the_copy_path_cannot_read_is_re_encoded_with_one_warning(tmp_path, caplog):
    wav = tmp_path / "x.wav"
    write_audio(wav, render_episode(SPEC, 22050, 0), 22050)
    layer2 = tmp_path / "layer2.mp3"  # MPEG layer II in a .mp3 name: not layer III frames
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(wav), "-c:a", "mp2", "-b:a", "96k", "-f", "mp2", str(layer2)],
        check=True,
    )
    with caplog.at_level(logging.WARNING):
        result = cut_episode(layer2, episode_segments(SPEC), tmp_path / "out.mp3")
    assert result.method == "reencode"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "re-encoding the whole episode" in warnings[0] and "\n" not in warnings[0]
    assert decode_original(tmp_path / "out.mp3")[1].shape[1] / 22050 == pytest.approx(
        result.kept_seconds, abs=0.05
    )


@needs_tools
def test_process_copies_mp3_and_the_json_says_so(tmp_path, random_checkpoint, monkeypatch):
    from adcut.detect import windows

    def predict(
        model, features, starts, window_frames, *, batch_size, device
    ):  # the true ads, as a sure model
        times = (starts + 0.5 * window_frames) * (256 / 4096)
        p_ad = np.where([any(a <= t < b for a, b in SPEC.ads) for t in times], 0.97, 0.03)
        return np.stack([p_ad, 1 - p_ad], axis=1).astype(np.float32)

    monkeypatch.setattr(windows, "predict_episode", predict)
    inp = make_mp3(tmp_path, "show", ffmpeg_args=("-b:a", "64k"), rate=16000, channels=1)
    model = random_checkpoint(hidden_size=8, num_layers=1)
    assert main(["-q", "process", str(inp), "--model", str(model)]) == 0
    settings = json.loads((tmp_path / "show.adcut.json").read_text())["settings"]
    assert settings["cut_method"] == "copy-mp3"
    assert validators(tmp_path / "show.adcut.mp3") == []
    assert main(["-q", "process", str(inp), "--model", str(model), "--force", "--reencode"]) == 0
    assert json.loads((tmp_path / "show.adcut.json").read_text())["settings"]["cut_method"] == "reencode"


@needs_tools
def test_real_recordings_reencoded_to_mp3(tmp_path, shared_data):
    """Read speech as content, music as the ads, encoded to MP3 (44.1 kHz joint stereo VBR and 16 kHz mono CBR)."""
    import soxr

    def load(path, rate):
        info, samples = decode_original(path)
        mono = samples.mean(axis=0)
        return (
            soxr.resample(mono, info.sample_rate, rate).astype(np.float32)
            if info.sample_rate != rate
            else mono
        )

    speech = sorted((shared_data / "speech").glob("*.ogg")) + sorted((shared_data / "speech").glob("*.wav"))
    music = sorted((shared_data / "music").glob("*.ogg"))
    if len(speech) < 3 or not music:
        pytest.skip("the shared recordings are not all there")
    for rate, args in ((44100, ("-q:a", "3")), (16000, ("-b:a", "48k"))):
        parts, segments, t = [], [], 0.0
        for i, clip in enumerate([speech[0], music[0], speech[1], music[-1], speech[2]]):
            audio = load(clip, rate)[: int(12 * rate)]
            label = "ad" if i % 2 else "content"
            segments.append(Segment(t, t + len(audio) / rate, label))
            parts.append(audio * (0.5 if label == "ad" else 1.0))
            t += len(audio) / rate
        wav = tmp_path / f"real{rate}.wav"
        write_audio(
            wav, np.stack([np.concatenate(parts)] * 2) if rate == 44100 else np.concatenate(parts), rate
        )
        inp = tmp_path / f"real{rate}.mp3"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-c:a", "libmp3lame", *args, str(inp)], check=True
        )
        result = cut_episode(inp, segments, tmp_path / f"real{rate}.out.mp3")
        check_splice(inp, tmp_path / f"real{rate}.out.mp3", segments, result, min_snr=10.0)


@needs_tools
@pytest.mark.parametrize(
    "case,segments,fade",
    [
        ("no ads", [Segment(0, 36, "content")], 0.03),
        ("ads at both ends", [Segment(0, 3, "ad"), Segment(3, 33, "content"), Segment(33, 36, "ad")], 0.03),
        (
            "a 60 ms content span between ads",
            [
                Segment(0, 10, "content"),
                Segment(10, 12, "ad"),
                Segment(12, 12.06, "content"),
                Segment(12.06, 14, "ad"),
                Segment(14, 36, "content"),
            ],
            0.03,
        ),
        (
            "a 200 ms content span between ads, no fade",
            [
                Segment(0, 10, "content"),
                Segment(10, 12, "ad"),
                Segment(12, 12.2, "content"),
                Segment(12.2, 14, "ad"),
                Segment(14, 36, "content"),
            ],
            0.0,
        ),
    ],
)
def test_edge_cases_of_the_plan(case, segments, fade, tmp_path):
    inp = make_mp3(tmp_path, "edges", ffmpeg_args=("-b:a", "96k"), pause=0.0)
    result = cut_episode(inp, segments, tmp_path / "out.mp3", fade_seconds=fade)
    assert result.method == "copy-mp3"
    assert validators(tmp_path / "out.mp3") == []
    decoded = decode_original(tmp_path / "out.mp3")[1]
    assert decoded.shape[1] / 44100 == pytest.approx(result.kept_seconds, abs=0.002)
    kept = sum(s.duration for s in segments if s.label == "content")
    edges = sum(1 for a, b in zip(segments, segments[1:]) if (a.label == "ad") != (b.label == "ad"))
    assert kept - edges * 1152 / 44100 - 0.001 <= result.kept_seconds <= kept + 0.001
    if case == "no ads":  # every audio frame copied as it was
        inp_mp3, out_mp3 = (
            read_mp3(inp, inp.read_bytes()),
            read_mp3(tmp_path / "out.mp3", (tmp_path / "out.mp3").read_bytes()),
        )
        assert [out_mp3.frame(j) for j in range(len(out_mp3.offsets))] == [
            inp_mp3.frame(k) for k in range(len(inp_mp3.offsets))
        ]
        assert result.kept_seconds == pytest.approx(decode_original(inp)[1].shape[1] / 44100, abs=1e-6)


@needs_tools
def test_tags_at_the_end_are_kept_as_they_are(tmp_path, caplog):
    """An ID3v2.4 tag appended with its footer, an APEv2 tag and an ID3v1 tag after the audio: not damage."""
    inp = make_mp3(
        tmp_path,
        "plain",
        ffmpeg_args=("-b:a", "64k"),
        rate=22050,
        channels=1,
        spec=EpisodeSpec(12.0, ((4.0, 6.0),)),
    )
    title = b"\x03Appended"
    frame = b"TIT2" + bytes([0, 0, 0, len(title)]) + b"\x00\x00" + title
    size = bytes([0, 0, 0, len(frame)])
    appended = b"ID3\x04\x00\x10" + size + frame + b"3DI\x04\x00\x10" + size
    item = b"Title\x00Ape"
    ape_items = struct.pack("<II", 3, 0) + item
    ape = ape_items + b"APETAGEX" + struct.pack("<IIII", 2000, len(ape_items) + 32, 1, 0) + bytes(8)
    id3v1 = b"TAG" + b"Old title".ljust(30, b"\x00") + bytes(95)
    tagged = tmp_path / "tagged.mp3"
    tail = appended + ape + id3v1
    tagged.write_bytes(inp.read_bytes() + tail)
    with caplog.at_level(logging.WARNING):
        result = cut_episode(
            tagged,
            [Segment(0, 4, "content"), Segment(4, 6, "ad"), Segment(6, 12, "content")],
            tmp_path / "out.mp3",
        )
    assert result.method == "copy-mp3"
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    out = (tmp_path / "out.mp3").read_bytes()
    assert out.endswith(tail)
    # (FFmpeg itself stumbles on tags after the audio, in the input too: the audio part is what is checked)
    (tmp_path / "audio.mp3").write_bytes(out[: -len(tail)])
    assert validators(tmp_path / "audio.mp3") == []


@needs_tools
def test_the_copy_path_refuses_a_stream_that_changes_sample_rate(tmp_path):
    """Half the file would be 'damaged bytes': the copy path gives the file to the re-encode path instead."""
    from adcut.media.mp3.cut import cut_mp3

    first = make_mp3(
        tmp_path, "a", ffmpeg_args=("-b:a", "64k"), rate=44100, channels=1, spec=EpisodeSpec(12.0, ())
    )
    second = make_mp3(
        tmp_path,
        "b",
        ffmpeg_args=("-b:a", "32k", "-write_xing", "0"),
        rate=22050,
        channels=1,
        spec=EpisodeSpec(12.0, ()),
    )
    joined = tmp_path / "joined.mp3"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    segments = [Segment(0, 4, "content"), Segment(4, 6, "ad"), Segment(6, 24, "content")]
    with pytest.raises(CopyUnsupported, match="not frames like the first ones"):
        cut_mp3(joined, probe(joined), segments, tmp_path / "tmp.mp3", tmp_path / "out.mp3")
