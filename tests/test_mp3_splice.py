"""The cut's dispatcher (copy paths by format, falling back to re-encoding) and the MP3 copy path."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from adcut.cli import main
from adcut.core.segments import Segment
from adcut.demo.synth import EpisodeSpec
from adcut.errors import CopyUnsupported
from adcut.media import cut as cutmod
from adcut.media.cut import cut_episode
from adcut.media.decode import decode_original, probe


def _refuse(path, info, segments, tmp, out_path, **kwargs):
    raise CopyUnsupported("test copy path refuses")


def test_a_copy_path_that_gives_up_falls_back_to_reencoding_with_one_warning(make_episode, tmp_path, monkeypatch, caplog):
    path, _ = make_episode("show", EpisodeSpec(20.0, ((5.0, 10.0),)), suffix=".wav", labels=False)
    monkeypatch.setitem(cutmod.COPY_PATHS, ".wav", ("copy-test", f"{__name__}:_refuse"))
    segments = [Segment(0.0, 5.0, "content"), Segment(5.0, 10.0, "ad"), Segment(10.0, 20.0, "content")]
    with caplog.at_level(logging.WARNING, logger="adcut.media.cut"):
        result = cut_episode(path, segments, tmp_path / "show.adcut.wav")
    assert result.method == "reencode"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "re-encoding the whole episode" in warnings[0].getMessage()
    assert "test copy path refuses" in warnings[0].getMessage()
    assert decode_original(result.path)[1].shape[1] / probe(result.path).sample_rate == pytest.approx(15.0, abs=0.01)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["show.adcut.wav", "show.wav"]  # no temporary left


def test_reencode_forces_the_whole_file_path_and_the_json_says_so(make_episode, random_checkpoint, tmp_path):
    path, _ = make_episode("show", EpisodeSpec(40.0, ((10.0, 25.0),)), suffix=".mp3", labels=False, bit_rate=64000)
    model = random_checkpoint(hidden_size=8, num_layers=1)
    assert main(["-q", "process", str(path), "--model", str(model), "--reencode"]) == 0
    settings = json.loads((tmp_path / "show.adcut.json").read_text())["settings"]
    assert settings["cut_method"] in ("reencode", None)  # None: an untrained model may call it all ad


# ---------------------------------------------------------------------------------------------- the MP3 copy path

import hashlib  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
from pathlib import Path  # noqa: E402

from adcut.demo.synth import episode_segments, render_episode  # noqa: E402
from adcut.media.encode import write_audio  # noqa: E402
from adcut.media.mp3_splice import main_data_begin, read_mp3  # noqa: E402

needs_tools = pytest.mark.skipif(not all(shutil.which(t) for t in ("ffmpeg", "ffprobe", "mpg123", "mp3val")),
                                 reason="ffmpeg, ffprobe, mpg123 and mp3val are needed")
SPEC = EpisodeSpec(36.0, ((6.0, 14.3), (22.71, 27.05)))


def make_mp3(tmp_path: Path, name: str, *, rate=44100, channels=2, ffmpeg_args=("-b:a", "128k"), spec=SPEC,
             pause=0.4, seed=0) -> Path:
    """Render ``spec`` (content, ads over a music bed) and encode it with the ffmpeg command line's LAME."""
    mono = render_episode(spec, rate, seed, pause_seconds=pause)
    audio = np.stack([mono, np.roll(mono, 11) * 0.9])[:channels]
    wav = tmp_path / f"{name}.wav"
    write_audio(wav, audio, rate)
    out = tmp_path / f"{name}.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(wav), "-c:a", "libmp3lame", *ffmpeg_args, str(out)], check=True)
    wav.unlink()
    return out


def validators(path: Path) -> list[str]:
    """What ffmpeg, mpg123 and mp3val complain about (nothing, for a good file)."""
    problems = []
    run = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"], capture_output=True, text=True)
    if run.returncode or run.stderr.strip():
        problems.append(f"ffmpeg: {run.stderr.strip()[:300]}")
    run = subprocess.run(["mpg123", "-t", str(path)], capture_output=True, text=True)
    noise = [line for line in run.stderr.splitlines() if any(w in line.lower() for w in ("error", "warning", "bad", "fail"))]
    if run.returncode or noise:
        problems.append(f"mpg123: {noise[:3]}")
    run = subprocess.run(["mp3val", str(path)], capture_output=True, text=True)
    noise = [line for line in run.stdout.splitlines() if line.startswith(("WARNING", "PROBLEM", "ERROR"))]
    if noise:
        problems.append(f"mp3val: {noise[:3]}")
    return problems


def ffprobe_duration(path: Path) -> float:
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
                         capture_output=True, text=True, check=True).stdout
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


def check_splice(inp: Path, out: Path, segments, result, *, min_snr=12.0):
    """The acceptance checks of the MP3 copy path; returns the SNR (dB) of the output against the input near the joins."""
    assert result.method == "copy-mp3"
    assert validators(out) == []
    inp_mp3 = read_mp3(inp, inp.read_bytes())
    out_mp3 = read_mp3(out, out.read_bytes())
    n, rate = inp_mp3.samples_per_frame, inp_mp3.first.sample_rate
    assert (out_mp3.first.sample_rate, out_mp3.first.channels, out_mp3.first.mpeg1) == \
        (rate, inp_mp3.first.channels, inp_mp3.first.mpeg1)

    # Decoded length, Xing frame count and ffprobe agree with the kept time.
    _, decoded_out = decode_original(out)
    _, decoded_in = decode_original(inp)
    assert decoded_out.shape[1] / rate == pytest.approx(result.kept_seconds, abs=0.002)
    if out_mp3.xing is not None:
        xing = out.read_bytes()[out_mp3.xing.offset:][: out_mp3.xing.size]
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
    joins = sum(1 for a, b in spans if a > 1e-3) + sum(1 for a, b in spans if b < spans[-1][1] - 1e-3 or b < inp_mp3.decoded_samples / rate - 0.05)
    new = len(out_mp3.offsets) - copied
    assert new <= 2 * joins * (1 + int(np.ceil(0.03 * rate / n)))
    # every output frame more than two frames from a join is one of the input's (copied runs are long)
    assert all(r[2] > 4 for r in runs)

    # Where each kept span landed: the input's audio, found in the output by correlation, within one frame.
    skip_in, skip_out = inp_mp3.skip, out_mp3.skip
    frames_kept = []  # (input lo, input hi) per kept frame range, in order, from the copied runs and the cut plan
    from adcut.media.mp3_splice import kept_frames

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
        for edge_in, edge_out in ((lo * n - skip_in, out_start - skip_out), (hi * n - skip_in, out_start + (hi - lo) * n - skip_out)):
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
@pytest.mark.parametrize("case,rate,channels,args", [
    ("cbr-44k-stereo", 44100, 2, ("-b:a", "128k")),
    ("vbr-44k-stereo", 44100, 2, ("-q:a", "4")),
    ("cbr-22k-mono", 22050, 1, ("-b:a", "40k")),
    ("vbr-24k-mono", 24000, 1, ("-q:a", "6")),
    ("cbr-12k-mono-mpeg2.5", 12000, 1, ("-b:a", "24k")),
    ("cbr-48k-no-xing", 48000, 2, ("-b:a", "96k", "-write_xing", "0")),
])
def test_cut_copies_the_kept_frames_and_rebuilds_the_joins(case, rate, channels, args, tmp_path):
    inp = make_mp3(tmp_path, case, rate=rate, channels=channels, ffmpeg_args=args, pause=0.0)
    segments = episode_segments(SPEC)
    result = cut_episode(inp, segments, tmp_path / "out.mp3")
    snrs = check_splice(inp, tmp_path / "out.mp3", segments, result)
    assert len(snrs) >= 3
