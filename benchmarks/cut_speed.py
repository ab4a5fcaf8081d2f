"""Speed of writing the cut MP3: copying frames (``copy-mp3``) against re-encoding, against the bare decode.

    .venv/bin/python benchmarks/cut_speed.py                 # 60- and 10-minute episodes, 8 breaks an hour
    .venv/bin/python benchmarks/cut_speed.py --minutes 10    # one length only

For each generated 44.1 kHz stereo 128 kbps MP3 (ad breaks of 25-90 s, 8 in 60 minutes), in one
run, each in its own process: the bare decode (PyAV, the whole file: the floor), detection
(``adcut process --no-cut``), the cut alone from the true segments by the copy path and by the
re-encode path, and ``adcut process`` with the cut (copy path) end to end; every figure is also
given as a ratio to the bare decode. Target from issue 11: ``process`` with the cut at most 1.25x
``process --no-cut``; a 10-minute episode end to end in at most 1.5 s.
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
    args = parser.parse_args()

    from adcut.demo.synth import EpisodeSpec, episode_segments, write_long_mp3

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="adcut-cut-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    model = train_model(workdir, untrained=False)
    python = sys.executable

    def best(command):
        runs = [timed(command) for _ in range(args.rounds)]
        return min(r[0] for r in runs), max(r[2] for r in runs)

    for minutes in args.minutes:
        spec = EpisodeSpec(minutes * 60.0, breaks(minutes))
        episode = workdir / f"cut-{minutes}min.mp3"
        if not episode.exists():
            started = time.perf_counter()
            write_long_mp3(episode, spec, sample_rate=44100, channels=2, bit_rate=128000)
            print(
                f"generated {episode.name} ({episode.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s"
            )
        truth = workdir / f"cut-{minutes}min.segments.json"
        truth.write_text(
            json.dumps([{"start": s.start, "end": s.end, "label": s.label} for s in episode_segments(spec)])
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
            [python, "-c", CUT, str(episode), str(truth), str(out / "copy.mp3"), "auto", "copy-mp3"]
        )
        reencode, reencode_cpu, _ = best(
            [python, "-c", CUT, str(episode), str(truth), str(out / "re.mp3"), "reencode", "reencode"]
        )
        whole, whole_cpu, whole_rss = best(process)
        settings = json.loads((out / f"{episode.stem}.adcut.json").read_text())["settings"]
        found = sum(
            1
            for s in json.loads((out / f"{episode.stem}.adcut.json").read_text())["segments"]
            if s["label"] == "ad"
        )

        print(
            f"\n{minutes}-minute 44.1 kHz stereo 128 kbps MP3, {len(spec.ads)} ad breaks ({found} found by the model); "
            f"each step in its own process, start-up included; x = ratio to the bare decode; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (wall times suffer from other work, CPU times less)"
        )
        rows = [
            ("bare decode (PyAV, whole file)", floor, floor_cpu, None),
            ("adcut process --no-cut (detection)", detect, detect_cpu, detect_rss),
            ("cut alone, copy path (copy-mp3)", copy, copy_cpu, copy_rss),
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
