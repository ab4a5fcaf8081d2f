"""Speed of writing the cut episode by the copy paths (MP3, M4A/AAC, WAV) against re-encoding and the bare decode.

    .venv/bin/python benchmarks/cut_speed.py                 # 60- and 10-minute episodes, 8 breaks an hour
    .venv/bin/python benchmarks/cut_speed.py --minutes 10    # one length only
    .venv/bin/python benchmarks/cut_speed.py --formats m4a,wav

For each generated 44.1 kHz stereo episode (ad breaks of 25-90 s, 8 in 60 minutes), as a 128 kbps MP3,
a 128 kbps AAC M4A and a 16-bit WAV of the same audio, in one run, each in its own process: the bare
decode (PyAV, the whole file: the floor), detection (``adcut process --no-cut``), the cut alone from
the true segments by the copy path and by the re-encode path, and ``adcut process`` with the cut (copy
path) end to end; every figure is also given as a ratio to the bare decode of the same file. Target
from issue 11: ``process`` with the cut at most 1.25x ``process --no-cut``; a 10-minute episode end to
end in at most 1.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from process_speed import DECODE_FLOOR, timed, train_model  # noqa: E402

CUT = """
import json, sys
from adcut.core.segments import Segment
from adcut.media.cut import cut_episode
segments = [Segment(s["start"], s["end"], s["label"]) for s in json.load(open(sys.argv[2]))]
result = cut_episode(sys.argv[1], segments, sys.argv[3], method=sys.argv[4])
assert result.method == (sys.argv[5]), result.method
"""

# The copy path each format's cut must take, and how the benchmark writes the episode.
COPY_METHODS = {"mp3": "copy-mp3", "m4a": "copy-aac", "wav": "copy-wav"}
LABELS = {"mp3": "128 kbps MP3", "m4a": "128 kbps AAC M4A", "wav": "16-bit WAV"}


def write_long_episode(
    path: Path, spec, *, sample_rate: int = 44100, channels: int = 2, bit_rate: int = 128_000
) -> None:
    """A long episode as M4A (AAC) or WAV, rendered a minute at a time as ``write_long_mp3`` does (same audio)."""
    import av
    import numpy as np
    import soxr

    from adcut.demo.synth import EpisodeSpec, render_episode
    from adcut.media.encode import StreamEncoder, open_audio_stream

    fmt, encoder, sample_format = {".m4a": ("ipod", "aac", "fltp"), ".wav": ("wav", "pcm_s16le", "s16")}[
        path.suffix
    ]
    layout = "mono" if channels == 1 else "stereo"
    container = av.open(str(path), mode="w", format=fmt)
    try:
        stream = open_audio_stream(
            container, encoder, sample_rate, layout, bit_rate if encoder == "aac" else None
        )
        writer = StreamEncoder(container, stream, sample_format, layout, sample_rate)
        for minute in range(int(np.ceil(spec.duration / 60.0))):
            start, end = minute * 60.0, min(minute * 60.0 + 60.0, spec.duration)
            ads = tuple(
                (max(a, start) - start, min(b, end) - start) for a, b in spec.ads if a < end and b > start
            )
            mono = render_episode(EpisodeSpec(end - start, ads), 16000, seed=minute)
            if sample_rate != 16000:
                mono = soxr.resample(mono, 16000, sample_rate).astype(np.float32)
            writer.push(np.tile(mono, (channels, 1)))
        writer.finish()
    finally:
        container.close()


def breaks(minutes: int) -> tuple[tuple[float, float], ...]:
    """8 breaks an hour (at least 2): a pre-roll, mid-rolls, a post-roll, 25-90 s each."""
    count = max(2, round(8 * minutes / 60))
    spacing = minutes * 60.0 / count
    ads = []
    for i in range(count):
        start = 2.0 + i * spacing + (0 if i == 0 else 37.3 * (i % 3))
        ads.append((start, start + 25.0 + 65.0 * ((i * 7) % 10) / 10))
    return tuple(ads)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=int, nargs="*", default=[60, 10])
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep the generated files here (reused when present)"
    )
    parser.add_argument("--rounds", type=int, default=1, help="repeat each timing, report the best")
    parser.add_argument(
        "--formats", default="mp3,m4a,wav", help="comma-separated: mp3,m4a,wav (default: all)"
    )
    args = parser.parse_args()
    formats = [f.strip().lower() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in COPY_METHODS]
    if unknown or not formats:
        parser.error(f"--formats: choose from {','.join(COPY_METHODS)}")

    from adcut.demo.synth import EpisodeSpec, episode_segments, write_long_mp3

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="adcut-cut-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    model = train_model(workdir, untrained=False)
    python = sys.executable

    def best(command):
        runs = [timed(command) for _ in range(args.rounds)]
        return min(r[0] for r in runs), min(r[1] for r in runs), max(r[2] for r in runs)

    for minutes in args.minutes:
        spec = EpisodeSpec(minutes * 60.0, breaks(minutes))
        for fmt in formats:
            episode = workdir / f"cut-{minutes}min.{fmt}"
            if not episode.exists():
                started = time.perf_counter()
                if fmt == "mp3":
                    write_long_mp3(episode, spec, sample_rate=44100, channels=2, bit_rate=128000)
                else:
                    write_long_episode(episode, spec, sample_rate=44100, channels=2, bit_rate=128000)
                print(
                    f"generated {episode.name} ({episode.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s"
                )
            truth = workdir / f"cut-{minutes}min.segments.json"
            truth.write_text(
                json.dumps(
                    [{"start": s.start, "end": s.end, "label": s.label} for s in episode_segments(spec)]
                )
            )
            out = workdir / "out"
            process = [
                python,
                "-m",
                "adcut",
                "-q",
                "process",
                str(episode),
                "--model",
                str(model),
                "--force",
                "-o",
                str(out),
                "--device",
                "cpu",
            ]

            floor, floor_cpu, _ = best([python, "-c", DECODE_FLOOR, str(episode)])
            detect, detect_cpu, detect_rss = best(process + ["--no-cut"])
            copy, copy_cpu, copy_rss = best(
                [
                    python,
                    "-c",
                    CUT,
                    str(episode),
                    str(truth),
                    str(out / f"copy.{fmt}"),
                    "auto",
                    COPY_METHODS[fmt],
                ]
            )
            reencode, reencode_cpu, _ = best(
                [python, "-c", CUT, str(episode), str(truth), str(out / f"re.{fmt}"), "reencode", "reencode"]
            )
            whole, whole_cpu, whole_rss = best(process)
            settings = json.loads((out / f"{episode.stem}.adcut.json").read_text())["settings"]
            found = sum(
                1
                for s in json.loads((out / f"{episode.stem}.adcut.json").read_text())["segments"]
                if s["label"] == "ad"
            )

            print(
                f"\n{minutes}-minute 44.1 kHz stereo {LABELS[fmt]}, {len(spec.ads)} ad breaks ({found} found by the model); "
                f"each step in its own process, start-up included; x = ratio to the bare decode; load average "
                f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall times suffer from other work, CPU times less)"
            )
            rows = [
                ("bare decode (PyAV, whole file)", floor, floor_cpu, None),
                ("adcut process --no-cut (detection)", detect, detect_cpu, detect_rss),
                (f"cut alone, copy path ({COPY_METHODS[fmt]})", copy, copy_cpu, copy_rss),
                ("cut alone, re-encode path", reencode, reencode_cpu, None),
                (f"adcut process with the cut ({settings['cut_method']})", whole, whole_cpu, whole_rss),
            ]
            for name, wall, cpu, rss in rows:
                memory = f"  peak RSS {rss:4.0f} MB" if rss else ""
                print(
                    f"  {name:42s} wall {wall:7.2f} s {wall / floor:6.2f}x   cpu {cpu:7.2f} s {cpu / floor_cpu:6.2f}x{memory}"
                )
            print(
                f"  process with the cut / process --no-cut: wall {whole / detect:.2f}, cpu {whole_cpu / detect_cpu:.2f} "
                f"(target <= 1.25); re-encode cut / copy cut: wall {reencode / copy:.0f}x, cpu {reencode_cpu / copy_cpu:.0f}x"
            )


if __name__ == "__main__":
    main()
