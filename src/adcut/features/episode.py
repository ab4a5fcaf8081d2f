"""MFCC frames of a long file decoded on several cores: time ranges in separate processes, joined exactly.

PyAV holds the GIL for much of its per-frame work, so decoding threads do not scale (measured: two
threads take twice the wall time of one); processes do. The file is cut at frame boundaries that
are also exact input-sample positions. Each later range seeks a little early (MP3 needs a few
frames after a seek before its output is exact again), places decoded frames by their timestamps,
starts the resampler and the MFCC frames on the grid a few seconds before its first frame and drops
that warm-up. The frames then equal those of one pass up to the resampler's rounding. A short piece
of audio decoded by both neighbouring ranges must match exactly, or everything is decoded in one
pass instead (so does any error: the single pass then reports it in its usual words).

The worker is ``python -m adcut.features.episode``: it imports numpy, PyAV and soxr only (no torch).
"""

from __future__ import annotations

import json
import os
import pickle
import queue
import subprocess
import sys
import threading
from collections.abc import Iterable, Iterator
from fractions import Fraction
from math import gcd
from pathlib import Path
from typing import Any, cast

import numpy as np

from adcut.core.units import Seconds
from adcut.features.mfcc import FeatureConfig, MfccStream, finish_features
from adcut.media import decode as audio

# Shorter files are decoded in one pass: a worker's start-up (~0.3 s) and warm-up would not pay off.
MIN_SPLIT_SECONDS: Seconds = 600.0
# Codecs whose timestamps after a seek were measured sample-exact and whose output is bit-exact a
# few frames later (AAC/M4A and Opus were not: priming and pre-skip shift them).
SPLIT_CODECS = ("mp3", "mp3float", "flac", "vorbis")
# Seek this much before a range's warm-up: MP3 frames decode wrong for 3 frames (bit reservoir).
DECODER_WARMUP_SECONDS: Seconds = 1.0
# Resampler and MFCC start-up discarded before a range's first frame (soxr's filter is ~10 ms).
PREROLL_SECONDS: Seconds = 2.0
# Decoded past a range's last frame, so that its resampler output and last MFCC window are final.
POSTROLL_SECONDS: Seconds = 1.0
# Input samples at a split point decoded by both neighbours, compared to confirm the placement.
CHECK_SAMPLES = 4096
# Environment override of the number of decoding processes (1: always one pass).
WORKERS_ENV = "ADCUT_DECODE_WORKERS"

_active = 0  # episodes being decoded in this process now (a thread pool may run several)
_active_lock = threading.Lock()


class SplitUnavailable(Exception):
    """This file cannot be split exactly; decode it in one pass."""


def default_workers() -> int:
    """Decoding processes for one episode: the cores shared among the episodes decoded at once.

    One inside a worker process of a pool (``adcut process DIR --jobs``): the pool already uses the cores.
    """
    env = os.environ.get(WORKERS_ENV, "").strip()
    if env.isdigit():
        return max(1, int(env))
    import multiprocessing

    if multiprocessing.parent_process() is not None:
        return 1
    return max(1, (os.cpu_count() or 1) // max(1, _active))


def grid_frames(input_rate: int, config: FeatureConfig) -> int:
    """Smallest frame step whose frame positions are whole input samples (44.1 kHz: 4 frames, 0.25 s)."""
    return config.sample_rate // gcd(config.sample_rate, config.hop_length * input_rate)


def _input_sample(frame: int, input_rate: int, config: FeatureConfig) -> int:
    return frame * config.hop_length * input_rate // config.sample_rate  # exact for frames on the grid


def plan_ranges(
    info: audio.AudioInfo, config: FeatureConfig, parts: int, first_share: float | None = None
) -> list[int | None] | None:
    """First frame of each range (then the end, None), or None when one pass is the way."""
    duration = info.duration or 0.0
    seekable = info.codec in SPLIT_CODECS or info.codec.startswith("pcm_")
    if parts < 2 or duration < MIN_SPLIT_SECONDS or not seekable or not info.sample_rate:
        return None
    grid = grid_frames(info.sample_rate, config)
    frames = duration * config.sample_rate / config.hop_length
    shares = (
        np.full(parts, 1.0 / parts)
        if first_share is None
        else np.r_[first_share, np.full(parts - 1, (1 - first_share) / (parts - 1))]
    )
    bounds = [0]
    for edge in np.cumsum(shares)[:-1]:
        frame = int(round(frames * edge / grid)) * grid
        if frame - bounds[-1] < grid or frame > frames - grid:
            return None
        bounds.append(frame)
    return [*bounds, None]


# --------------------------------------------------------------------------- one range


def _mono(frame, lo: int, hi: int) -> np.ndarray:
    floats = audio._array_to_float(audio.frame_array(frame, lo, hi), *audio.frame_layout(frame))
    return floats.mean(axis=0, dtype=np.float32) if floats.shape[0] > 1 else floats[0].copy()


def range_messages(
    path: Path, config: FeatureConfig, first: int, stop: int | None, tap_rate: int | None = None
) -> Iterator[tuple]:
    """MFCC frames ``[first, stop)`` of ``path`` (``stop`` None: to the end) as messages.

    ``("check", name, samples)``: mono input samples at the range's first frame ("head") or at
    ``stop`` ("tail"), for the neighbour to compare; ``("frames", mfcc)`` in order; finally
    ``("end", n_samples)`` (resampled samples in the whole file, known to the last range only).
    With ``tap_rate``, also ``("pcm", offset, int16 samples)``: the same time range at that rate
    (``audio.RateTap``), for a reader that needs another rate (speech recognition).
    """
    import av

    container = audio._open(path)
    try:
        info = audio._info(path, container)
        stream = container.streams.audio[0]
        stream.thread_type = "AUTO"
        rate = info.sample_rate
        grid = grid_frames(rate, config)
        if first % grid or (stop is not None and stop % grid):
            raise SplitUnavailable("range not on the grid")
        preroll = int(np.ceil(PREROLL_SECONDS * config.sample_rate / config.hop_length / grid)) * grid
        begin = max(0, first - preroll) if first else 0
        s_begin = _input_sample(begin, rate, config)
        s_first = _input_sample(first, rate, config)
        s_stop = _input_sample(stop, rate, config) if stop is not None else None
        s_end = s_stop + int(POSTROLL_SECONDS * rate) + CHECK_SAMPLES if s_stop is not None else None
        origin = stream.start_time or 0
        time_base = stream.time_base
        checks_wanted = ([("head", s_first)] if first else []) + (
            [("tail", s_stop)] if s_stop is not None else []
        )
        pieces: dict[str, list[np.ndarray]] = {name: [] for name, _ in checks_wanted}
        ready: list[tuple] = []
        if s_begin > 0:
            target = Fraction(s_begin - int(DECODER_WARMUP_SECONDS * rate), rate)
            container.seek(origin + int(target / time_base), stream=stream, backward=True, any_frame=False)

        # Timestamps to sample positions in integers: Fraction arithmetic per frame cost more than
        # a tenth of the decoding (69,000 MP3 frames per half hour).
        tb_num, tb_den = time_base.numerator * rate, time_base.denominator
        pending_checks = list(checks_wanted)  # dropped once complete: the loop runs per frame

        def frames() -> Iterator[tuple[Any, int, int]]:
            position = None  # input sample index of the next frame's first sample
            for frame in container.decode(stream):
                n = frame.samples
                if frame.sample_rate != rate:
                    raise SplitUnavailable("sample rate changes")
                if s_begin > 0:  # placed by timestamp after the seek
                    pts = frame.pts
                    if pts is None:
                        raise SplitUnavailable("frame without timestamp")
                    exact, remainder = divmod((pts - origin) * tb_num, tb_den)
                    if remainder or (position is not None and exact != position):
                        raise SplitUnavailable("timestamps do not count samples")
                    if position is None and exact > s_begin - rate // 4:
                        raise SplitUnavailable("seek landed too late")
                    position = exact
                elif position is None:
                    position = 0
                for check in tuple(pending_checks):
                    name, at = check
                    lo, hi = max(at, position), min(at + CHECK_SAMPLES, position + n)
                    if lo < hi:
                        pieces[name].append(_mono(frame, lo - position, hi - position))
                        if hi == at + CHECK_SAMPLES:
                            ready.append(("check", name, np.concatenate(pieces[name])))
                            pending_checks.remove(check)
                lo = max(0, s_begin - position)
                hi = n if s_end is None else min(n, s_end - position)
                if hi > lo:
                    yield frame, lo, hi
                position += n
                if s_end is not None and position >= s_end:
                    return
            if s_end is not None:
                raise SplitUnavailable("file ended before the range did")
            declared = info.duration
            if position is None or (
                declared and position / rate < declared * (1 - audio._TRUNCATION_TOLERANCE) - 1.0
            ):
                raise SplitUnavailable("truncated")  # the single pass reports it

        mfcc = MfccStream(config)
        next_frame = begin  # global index of the next frame mfcc hands over
        tap = (
            audio.RateTap(
                tap_rate,
                lambda offset, pcm: ready.append(("pcm", offset, pcm)),
                first_input=s_begin,
                keep_from=s_first,
                keep_until=s_stop,
            )
            if tap_rate
            else None
        )
        try:
            blocks = audio.resampled_blocks(
                frames(), lambda: rate, config.sample_rate, flush_at_end=stop is None, tap=tap
            )
            for block in blocks:
                mfcc.push(block)
                yield from ready
                ready.clear()
                for part in mfcc.take():
                    keep = part[
                        max(0, first - next_frame) : None if stop is None else max(0, stop - next_frame)
                    ]
                    next_frame += len(part)
                    if len(keep):
                        yield ("frames", keep)
        except av.FFmpegError as error:
            raise SplitUnavailable(f"decoding failed ({error})") from None
        yield from ready
        ready.clear()
        if stop is not None:
            if next_frame < stop:
                raise SplitUnavailable("too few frames before the split")
            yield ("end", None)
            return
        if tap is not None:
            tap.finish()
            yield from ready
            ready.clear()
        n_samples = begin * config.hop_length + mfcc.n_samples
        rest = mfcc.finish()
        total = config.frames_for(n_samples)
        keep = rest[max(0, first - next_frame) : max(0, total - next_frame)]
        if len(keep):
            yield ("frames", keep)
        yield ("end", n_samples)
    finally:
        container.close()


# --------------------------------------------------------------------------- worker processes


def _worker_main() -> None:
    """``python -m adcut.features.episode PATH CONFIG_JSON FIRST STOP [TAP_RATE]``: pickled messages on stdout."""
    path, config_json, first, stop = sys.argv[1:5]
    tap_rate = int(sys.argv[5]) if len(sys.argv) > 5 and sys.argv[5] != "-" else None
    out = sys.stdout.buffer
    try:
        config = FeatureConfig.from_dict(json.loads(config_json))
        for message in range_messages(
            Path(path), config, int(first), None if stop == "-" else int(stop), tap_rate
        ):
            pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
            out.flush()
    except BaseException as error:  # anything: the parent decodes in one pass instead
        pickle.dump(("error", f"{type(error).__name__}: {error}"), out)
        out.flush()


class _Worker:
    """One range decoded in a child process; a thread drains its pipe so that it never waits on us."""

    def __init__(self, path: Path, config: FeatureConfig, first: int, stop: int | None, tap=None):
        self.tap = tap
        tap_rate = tap.sample_rate if tap is not None else None
        env = dict(os.environ)
        package_root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
        env.setdefault("OPENBLAS_NUM_THREADS", "1")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "adcut.features.episode",
                str(path),
                json.dumps(config.to_dict()),
                str(first),
                "-" if stop is None else str(stop),
                str(tap_rate) if tap_rate else "-",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        assert self.process.stdout is not None  # stdout=PIPE
        self.stdout = self.process.stdout
        self.messages: queue.Queue = queue.Queue()
        self.reader = threading.Thread(target=self._read, name="adcut-decode-worker", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        try:
            while True:
                message = pickle.load(self.stdout)
                if message[0] == "pcm" and self.tap is not None:
                    # straight on, so that the audio of a range read ahead never piles up in memory
                    self.tap.write(message[1], message[2])
                else:
                    self.messages.put(message)
        except EOFError:
            self.messages.put(("error", "worker ended early"))
        except Exception as error:  # noqa: BLE001 - the consumer falls back to one pass
            self.messages.put(("error", f"unreadable worker output ({error})"))

    def __iter__(self) -> Iterator[tuple]:
        while True:
            message = self.messages.get()
            if message[0] == "error":
                raise SplitUnavailable(message[1])
            yield message
            if message[0] == "end":
                return

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.stdout.close()
        self.reader.join(timeout=5)


# --------------------------------------------------------------------------- the whole file


class EpisodeMfcc:
    """MFCC frames of a whole file, in order and chunk by chunk; ``n_samples`` is set at the end.

    With ``workers`` > 1 a long file of a seekable codec is decoded in that many time ranges at
    once, in child processes; otherwise, or when the ranges cannot be joined exactly, in one pass
    (``audio.iter_blocks``). ``prefetch`` overlaps this process's decoding with the caller's work in a
    background thread. ``local_first``: decode the first range in this process (default: when not
    ``prefetch``, i.e. when the caller has nothing else to do). ``first_size``: the first range's
    size relative to the others (default 1: equal ranges); a caller that runs a model beside the
    decoding takes a smaller first range (``segment.stream_window_probs``). ``tap``: an object with
    ``sample_rate`` and ``write(offset, int16 samples)`` that gets the whole file at that rate too,
    from the same decode (in pieces, in any order; after a failed split, all of it again).
    """

    def __init__(
        self,
        path: Path,
        config: FeatureConfig,
        workers: int | None = None,
        *,
        prefetch: bool = True,
        first_size: float = 1.0,
        local_first: bool | None = None,
        tap=None,
    ):
        self.path = Path(path)
        self.tap = tap
        self.tap_rate = tap.sample_rate if tap is not None else None
        self.config = config
        self.workers = workers
        self.prefetch = prefetch
        self.first_size = first_size
        self.local_first = (not prefetch) if local_first is None else local_first
        self.n_samples: int | None = None
        self.split_used = False  # whether the frames came from several processes (tests, benchmarks)

    def __iter__(self) -> Iterator[np.ndarray]:
        global _active
        with _active_lock:
            _active += 1
        try:
            workers = self.workers or default_workers()
            ranges = None
            if workers > 1:
                first_share = (
                    None if self.first_size == 1.0 else self.first_size / (self.first_size + workers - 1)
                )
                ranges = plan_ranges(audio.probe(self.path), self.config, workers, first_share)
            if ranges is None:
                yield from self._single_pass(skip=0)
            else:
                yield from self._split(ranges)
        finally:
            with _active_lock:
                _active -= 1

    def _single_pass(self, skip: int) -> Iterator[np.ndarray]:
        """Frames from ``skip`` on, all decoded here (``skip``: frames the caller already has)."""
        stream = MfccStream(self.config)
        tap = audio.RateTap(self.tap.sample_rate, self.tap.write) if self.tap is not None else None
        blocks = audio.iter_blocks(self.path, self.config.sample_rate, tap=tap)
        done = 0
        for block in audio.prefetch(blocks, depth=2) if self.prefetch else blocks:
            stream.push(block)
            for part in stream.take():
                if done + len(part) > skip:
                    yield part[max(0, skip - done) :]
                done += len(part)
        if tap is not None:
            tap.finish()
        rest = stream.finish()[: max(0, self.config.frames_for(stream.n_samples) - done)]
        if len(rest) > max(0, skip - done):
            yield rest[max(0, skip - done) :]
        self.n_samples = stream.n_samples

    def _split(self, ranges: list[int | None]) -> Iterator[np.ndarray]:
        # every range has a first frame; only the last one's end is None (the end of the file)
        spans = [(cast(int, first), stop) for first, stop in zip(ranges[:-1], ranges[1:])]
        local = spans[:1] if self.local_first else []
        workers = [
            _Worker(self.path, self.config, first, stop, self.tap) for first, stop in spans[len(local) :]
        ]
        yielded = 0
        try:
            try:
                here = [range_messages(self.path, self.config, *span, self.tap_rate) for span in local]
                if here and self.prefetch:
                    here[0] = audio.prefetch(here[0], depth=4)
                sources: list[Iterable[tuple]] = [*here, *workers]
                tail = None
                for index, source in enumerate(sources):
                    for message in source:
                        kind = message[0]
                        if kind == "frames":
                            yield message[1]
                            yielded += len(message[1])
                        elif kind == "pcm":
                            self.tap.write(message[1], message[2])
                        elif kind == "check" and message[1] == "tail":
                            tail = message[2]
                        elif (
                            kind == "check"
                        ):  # head of this range: must be what the previous one decoded there
                            if tail is None or not np.array_equal(tail, message[2]):
                                raise SplitUnavailable("ranges do not meet exactly")
                        elif kind == "end":
                            self.n_samples = message[1]
                    if index + 1 < len(sources) and yielded != ranges[index + 1]:
                        raise SplitUnavailable("a range ended early")
                if self.n_samples is None or yielded != self.config.frames_for(self.n_samples):
                    raise SplitUnavailable("frame count differs")
                self.split_used = True
                return
            except Exception:  # noqa: BLE001 - incl. a bad file: the single pass reports it in its words
                pass  # what has been handed over so far is exact: the rest comes from one pass
            for worker in workers:
                worker.close()
            yield from self._single_pass(skip=yielded)
        finally:
            for worker in workers:
                worker.close()


def episode_features(path, config: FeatureConfig, workers: int | None = None) -> tuple[np.ndarray, Seconds]:
    """Decode ``path`` and compute its features in one streaming pass; returns (features, duration).

    ``workers``: processes decoding a long file at once (``features.episode``; the numbers equal one
    pass's within float rounding). None: the cores shared among the episodes decoded at once in
    this process; 1: one pass here.
    """
    from adcut.features.episode import EpisodeMfcc

    source = EpisodeMfcc(path, config, workers, prefetch=False)
    chunks = list(source)
    mfcc = np.concatenate(chunks) if chunks else np.zeros((0, config.n_mfcc), np.float32)
    assert source.n_samples is not None  # set once the iteration ended
    return finish_features(mfcc, config), source.n_samples / config.sample_rate


if __name__ == "__main__":
    _worker_main()
