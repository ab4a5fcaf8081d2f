"""Speed of writing the cut episode for M4A/AAC and WAV: the copy paths against the bare decode of the same file.

    .venv/bin/python benchmarks/cut_speed_m4a.py                 # 60 minutes, 44.1 kHz stereo, 8 breaks
    .venv/bin/python benchmarks/cut_speed_m4a.py --minutes 10 --workdir /tmp/cutbench

For each format, in one run, each measurement in its own process (wall, CPU and peak RSS):
the bare single-core decode of the file (the floor), the cut alone with the segments given (the copy
path, and ``--reencode``'s whole-file path), and ``adcut process --no-cut`` against ``adcut process``
with the cut. The issue's target: ``process`` with the cut at most 1.25x ``process --no-cut``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from process_speed import DECODE_FLOOR, timed, train_model  # noqa: E402

CUT = """
import json, sys
from adcut.core.segments import Segment
from adcut.media.cut import cut_episode
segments = [Segment(s["start"], s["end"], s["label"]) for s in json.load(open(sys.argv[2]))]
result = cut_episode(sys.argv[1], segments, sys.argv[3], method=sys.argv[4])
print(result.method, result.kept_seconds, file=sys.stderr)
"""


def breaks(minutes: int, count: int = 8) -> tuple[tuple[float, float], ...]:
    """``count`` ad breaks of 30-75 s spread over the episode."""
    rng = np.random.default_rng(3)
    step = minutes * 60.0 / (count + 1)
    return tuple((round(step * (i + 1), 3), round(step * (i + 1) + float(rng.uniform(30, 75)), 3)) for i in range(count))


def generate(m4a: Path, wav: Path, minutes: int, sample_rate: int, channels: int, bit_rate: int, count: int = 8) -> None:
    """The same generated episode as 128 kbps AAC in M4A and as 16-bit WAV, rendered a minute at a time."""
    import av
    import soxr

    from adcut.demo.synth import EpisodeSpec, render_episode
    from adcut.media.encode import StreamEncoder, open_audio_stream

    spec = EpisodeSpec(minutes * 60.0, breaks(minutes, count))
    layout = "mono" if channels == 1 else "stereo"
    outputs = []
    for path, fmt, encoder, sample_format, rate in ((m4a, "ipod", "aac", "fltp", bit_rate), (wav, "wav", "pcm_s16le", "s16", None)):
        container = av.open(str(path), mode="w", format=fmt)
        stream = open_audio_stream(container, encoder, sample_rate, layout, rate)
        outputs.append((container, StreamEncoder(container, stream, sample_format, layout, sample_rate)))
    try:
        for minute in range(minutes):
            start, end = minute * 60.0, minute * 60.0 + 60.0
            ads = tuple((max(a, start) - start, min(b, end) - start) for a, b in spec.ads if a < end and b > start)
            mono = render_episode(EpisodeSpec(60.0, ads), 16000, seed=minute)
            block = np.tile(soxr.resample(mono, 16000, sample_rate).astype(np.float32), (channels, 1))
            for _, writer in outputs:
                writer.push(block)
        for _, writer in outputs:
            writer.finish()
    finally:
        for container, _ in outputs:
            container.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=int, default=60)
    parser.add_argument("--channels", type=int, default=2, choices=(1, 2))
    parser.add_argument("--sample-rate", type=int, default=44100)
    parser.add_argument("--breaks", type=int, default=8, help="ad breaks in the episode")
    parser.add_argument("--rounds", type=int, default=1, help="repeat each timing, report the best")
    parser.add_argument("--no-reencode", action="store_true", help="skip the (slow) whole-file re-encode measurement")
    parser.add_argument("--no-process", action="store_true", help="only the cut alone (no model, no process runs)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the generated files here (reused when present)")
    args = parser.parse_args()

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="adcut-cutbench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    stem = f"episode-{args.minutes}min-{args.breaks}breaks-{args.sample_rate}-{args.channels}ch"
    m4a, wav = workdir / f"{stem}.m4a", workdir / f"{stem}.wav"
    if not (m4a.exists() and wav.exists()):
        started = time.perf_counter()
        generate(m4a, wav, args.minutes, args.sample_rate, args.channels, 128000, args.breaks)
        print(f"generated {m4a.name} ({m4a.stat().st_size / 1e6:.0f} MB) and {wav.name} "
              f"({wav.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s")
    ads = breaks(args.minutes, args.breaks)
    segments, t = [], 0.0
    for a, b in ads:
        segments += [{"label": "content", "start": t, "end": a}, {"label": "ad", "start": a, "end": b}]
        t = b
    segments.append({"label": "content", "start": t, "end": args.minutes * 60.0})
    segments_file = workdir / "segments.json"
    segments_file.write_text(json.dumps(segments))
    python = sys.executable
    seconds = args.minutes * 60.0

    def best(command):
        runs = [timed(command) for _ in range(args.rounds)]
        return min(r[0] for r in runs), min(r[1] for r in runs), max(r[2] for r in runs)

    model_path = None if args.no_process else train_model(workdir, untrained=False)
    print(f"episode: {args.minutes} min, {args.sample_rate} Hz, {args.channels} ch, {len(ads)} ad breaks "
          f"({sum(b - a for a, b in ads):.0f} s); {os.cpu_count()} cores; load average {os.getloadavg()[0]:.1f} "
          "(other work on the machine skews wall times; CPU times less)")
    for episode, label in ((m4a, "M4A (AAC 128 kbps)"), (wav, "WAV (16-bit PCM)")):
        out = workdir / f"out{episode.suffix}"
        floor, floor_cpu, floor_rss = best([python, "-c", DECODE_FLOOR, str(episode)])
        copy, copy_cpu, copy_rss = best([python, "-c", CUT, str(episode), str(segments_file), str(out), "auto"])
        print(f"\n{label}, {episode.stat().st_size / 1e6:.0f} MB")
        print(f"  bare decode (PyAV, 1 core, the floor): wall {floor:6.2f} s  cpu {floor_cpu:6.2f} s  {seconds / floor:6.0f}x realtime")
        print(f"  cut alone, copy path:                  wall {copy:6.2f} s  cpu {copy_cpu:6.2f} s  "
              f"{copy / floor:5.2f}x the floor (cpu {copy_cpu / floor_cpu:.2f}x)  peak RSS {copy_rss:.0f} MB")
        if not args.no_reencode:
            whole, whole_cpu, whole_rss = best([python, "-c", CUT, str(episode), str(segments_file), str(out), "reencode"])
            print(f"  cut alone, --reencode:                 wall {whole:6.2f} s  cpu {whole_cpu:6.2f} s  "
                  f"{whole / floor:5.2f}x the floor (cpu {whole_cpu / floor_cpu:.2f}x)  peak RSS {whole_rss:.0f} MB")
        sys.stdout.flush()
        if model_path is None:
            continue
        adcut = [python, "-m", "adcut", "-q", "process", str(episode), "--model", str(model_path), "--force",
                 "-o", str(workdir / "out"), "--device", "cpu"]
        detect, detect_cpu, detect_rss = best(adcut + ["--no-cut"])
        full, full_cpu, full_rss = best(adcut)
        method = json.loads((workdir / "out" / f"{episode.stem}.adcut.json").read_text())["settings"].get("cut_method")
        print(f"  adcut process --no-cut:                wall {detect:6.2f} s  cpu {detect_cpu:6.2f} s  peak RSS {detect_rss:.0f} MB")
        print(f"  adcut process (cut: {method}):{' ' * max(1, 17 - len(str(method)))}wall {full:6.2f} s  cpu {full_cpu:6.2f} s  "
              f"{full / detect:.2f}x process --no-cut (cpu {full_cpu / detect_cpu:.2f}x)  peak RSS {full_rss:.0f} MB")


if __name__ == "__main__":
    main()
