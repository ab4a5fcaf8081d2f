"""The word cue's cheap scan (issue 15): which read ads each scan setting hears, and what it costs.

``adcut process --words auto`` reads every content stretch with a cheap keyword scan and searches
closely only around the strong phrases the scan heard (``detect.words.strong_phrases``), so a read
ad in which the scan hears none of them is lost. This generates unseen host-read episodes (``demo.hostread``, test draw:
espeak-ng voices, brands and wording of its own; half of the spots read by
the host with no bed) and, for each scan setting (``--search PER_PHONE,FRAMES_A_SECOND,DOWNSAMPLE[,TOP_GAUSSIANS,BEAM]``,
default: the shipped ``recognise.SCAN`` and the settings it was chosen against), reads each
episode's content as ``detect`` gives it to ``spot_stretches`` (``--read content``: the stretches between
its produced spots, in 60 s pieces from each stretch's start, one cepstral mean from the first 30 s
read; ``--read whole`` reads the whole episode, which hears more) and reports:

- read ads heard: host-read ads with at least one trigger (a strong built-in phrase) inside them (+-1 s);
- trigger hits outside the ads, per hour read (each makes the full search read up to a minute);
- CPU seconds, and the scan's speed as x realtime per core (audio read / CPU time) (one process, one core).

Speed is the ratio of audio to CPU time in this run; run nothing else beside it when comparing.

    .venv/bin/python benchmarks/scan_recall.py [--episodes 24] [--search 6.0,40,2,2,1e-80 --search 6.0,40,3]
"""

from __future__ import annotations

import argparse
import time

# compared with the shipped scan by default: the same rate scored from 2 Gaussians a codebook instead
# of 4 (with the wider beam it needs), the one before the shipped (every 60 ms), and a cheaper rate
OTHER_CANDIDATES = ("6.0,40,2,2,1e-80", "6.0,50,3", "6.0,40,3")


def parse_search(text: str):
    from adcut.words.recognise import Search

    try:
        fields = text.split(",")
        if len(fields) not in (3, 5):
            raise ValueError(text)
        scoring = (int(fields[3]), float(fields[4])) if len(fields) == 5 else ()
        search = Search(float(fields[0]), int(fields[1]), int(fields[2]), *scoring)
    except ValueError:
        raise SystemExit(
            f"--search {text!r}: expected PER_PHONE,FRAMES_A_SECOND,DOWNSAMPLE[,TOP_GAUSSIANS,BEAM], e.g. 6.0,40,2,2,1e-80"
        ) from None
    if search.per_phone <= 0 or search.frame_rate < 40 or search.downsample < 1 or search.top_gaussians < 1:
        raise SystemExit(
            f"--search {text!r}: pocketsphinx takes 40 frames a second or more, a downsample and top Gaussians of 1 or more"
        )
    return search


def describe(search, sep: str) -> str:
    return sep.join(
        str(v)
        for v in (
            search.per_phone,
            search.frame_rate,
            search.downsample,
            search.top_gaussians,
            f"{search.beam:g}",
        )
    )


def read_stretches(episode, read: str) -> list[tuple[float, float]]:
    """What the scan reads of ``episode``: all of it, or (``content``) the stretches between its produced spots."""
    if read == "whole":
        return [(0.0, episode.duration)]
    from adcut.core.segments import subtract_spans

    ads = [s for s in episode.segments if s.label == "ad"]
    produced = [(a.start, a.end) for a, kind in zip(ads, episode.kinds) if kind != "host"]
    # detect reads content stretches of 3 s or more (detect.words.content_stretches)
    return subtract_spans([(0.0, episode.duration)], produced, min_seconds=3.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--episodes", type=int, default=24, help="unseen host-read episodes (2 read ads each)"
    )
    parser.add_argument("--seed", type=int, default=2, help="data seed (episode i: seed * 1000 + i)")
    parser.add_argument(
        "--search",
        action="append",
        help="a scan setting PER_PHONE,FRAMES_A_SECOND,DOWNSAMPLE (repeatable; default: the shipped one and "
        + ", ".join(OTHER_CANDIDATES)
        + "); pocketsphinx takes 40 frames a second or more",
    )
    parser.add_argument(
        "--read",
        choices=("content", "whole"),
        default="content",
        help="content (default): only what detect scans, each episode without its produced spots (as a sound "
        "model that hears every produced spot and no read ad leaves it), in pieces from each stretch's start; "
        "whole: the whole episode in pieces from 0 s, which hears more (the pieces start elsewhere)",
    )
    args = parser.parse_args()

    from adcut.demo.hostread import espeak_available, hostread_episode
    from adcut.detect.words import WordsConfig, strong_phrases
    from adcut.words.phrases import BUILTIN_ENGLISH
    from adcut.words.recognise import SAMPLE_RATE, SCAN, Spotter, dedupe, piece_bounds

    if not espeak_available():
        raise SystemExit("needs espeak-ng (apt-get install espeak-ng)")
    shipped = describe(SCAN, ",")
    searches = [parse_search(s) for s in (args.search or [shipped, *OTHER_CANDIDATES])]
    began = time.perf_counter()
    episodes = [
        hostread_episode(args.seed * 1000 + i, draw="test", ads=4, host_share=0.5)
        for i in range(args.episodes)
    ]
    audio_seconds = sum(e.duration for e in episodes)
    read_seconds = sum(b - a for e in episodes for a, b in read_stretches(e, args.read))
    read_ads = sum(kind == "host" for e in episodes for kind in e.kinds)
    print(
        f"{args.episodes} unseen host-read episodes, {audio_seconds / 60:.0f} min ({read_seconds / 60:.0f} min read), "
        f"{read_ads} read ads "
        f"(generated in {time.perf_counter() - began:.0f} s)"
    )
    triggers = strong_phrases(BUILTIN_ENGLISH, WordsConfig())  # the phrases whose scan hits start the search
    print(
        f"{'per phone, frames/s, ds, top, beam':36s} {'read ads heard':>15s} {'other triggers':>18s} {'cpu':>8s} {'x realtime/core':>16s}"
    )
    for search in searches:
        heard = outside = 0
        cpu = 0.0
        for episode in episodes:
            spotter = Spotter(BUILTIN_ENGLISH, search=search)
            audio = episode.audio
            stretches = read_stretches(episode, args.read)
            first = int(stretches[0][0] * SAMPLE_RATE)
            spotter.warm_up(audio[first : first + 30 * SAMPLE_RATE])
            started = time.process_time()
            hits = [
                hit
                for lo, hi in piece_bounds(stretches)
                for hit in spotter.spot(audio[lo:hi], lo / SAMPLE_RATE)
            ]
            cpu += time.process_time() - started
            hits = [h for h in dedupe(hits) if h.phrase in triggers]
            ads = [s for s in episode.segments if s.label == "ad"]

            def inside(hit, ad) -> bool:
                return ad.start - 1.0 <= hit.start and hit.end <= ad.end + 1.0

            heard += sum(
                any(inside(h, ad) for h in hits) for ad, kind in zip(ads, episode.kinds) if kind == "host"
            )
            outside += sum(not any(inside(h, ad) for ad in ads) for h in hits)
        label = describe(search, ", ") + ("  (shipped)" if search == SCAN else "")
        print(
            f"{label:36s} {heard:>9d} of {read_ads:<3d} {outside / read_seconds * 3600:>12.1f} /h "
            f"{cpu:>7.1f}s {read_seconds / cpu:>15.0f}x",
            flush=True,
        )


if __name__ == "__main__":
    main()
