"""Waveform peaks for the labeller: min/max per column at several zoom levels, computed once per episode.

The finest level has one column per ``1 / bins_per_second`` seconds (10 ms by default); each
coarser level merges ``level_factor`` columns of the one below. The page picks the finest level
that is no finer than its pixels and merges columns into pixels itself, so any zoom is cheap.

Peaks are taken from the file's own samples (no resampling: true peaks, and no time spent in a
resampler), min/max over all channels so that out-of-phase stereo does not look silent.
Decoding runs in a background thread and the snapshot grows as it goes, so the page of a
3-hour episode is usable at once and its waveform fills in within seconds.
"""

from __future__ import annotations

import base64
import logging
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from adcut.core.units import Seconds
from adcut.errors import AdcutError
from adcut.media.decode import iter_frames

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PeaksConfig:
    bins_per_second: float = 100.0  # finest level: 10 ms columns, finer than the page's 0.1 s times
    level_factor: int = 4  # columns merged per step from one level to the next coarser one
    coarsest_bins: int = 2000  # stop adding levels once one is narrower than this (an overview's width)
    chunk_seconds: Seconds = 2.0  # decoded audio gathered before it is binned (vectorised numpy)


@dataclass
class Peaks:
    """A snapshot of the peaks pyramid: ``levels[k]`` is float32 ``(columns, 2)`` of (min, max)."""

    sample_rate: int
    samples_per_bin: int  # level 0, at ``sample_rate``
    level_factor: int
    levels: list[np.ndarray]
    duration: Seconds  # audio decoded so far (the whole file once complete)
    complete: bool
    error: str | None = None

    def seconds_per_bin(self, level: int) -> Seconds:
        return self.samples_per_bin * self.level_factor**level / self.sample_rate

    def to_json(self) -> dict:
        """For the page: each level as base64 int8 pairs (min, max) scaled to +-127."""
        return {
            "complete": self.complete,
            "error": self.error,
            "duration": round(self.duration, 6),
            "levels": [
                {
                    "seconds_per_bin": self.seconds_per_bin(k),
                    "count": int(level.shape[0]),
                    "data": base64.b64encode(quantize(level).tobytes()).decode("ascii"),
                }
                for k, level in enumerate(self.levels)
            ],
        }


def quantize(level: np.ndarray) -> np.ndarray:
    """(min, max) float pairs as int8, rounded outwards so a peak never looks smaller than it is."""
    scaled = np.clip(level, -1.0, 1.0) * 127.0
    out = np.empty(level.shape, np.int8)
    out[:, 0] = np.floor(scaled[:, 0])
    out[:, 1] = np.ceil(scaled[:, 1])
    return out


def coarsen(level: np.ndarray, factor: int) -> np.ndarray:
    """Merge every ``factor`` columns (the last group may be partial) into one (min, max) column."""
    n = level.shape[0]
    if n == 0:
        return level.copy()
    starts = np.arange(0, n, factor)
    return np.stack(
        [np.minimum.reduceat(level[:, 0], starts), np.maximum.reduceat(level[:, 1], starts)], axis=1
    )


def build_levels(finest: np.ndarray, config: PeaksConfig) -> list[np.ndarray]:
    levels = [finest]
    while levels[-1].shape[0] > config.coarsest_bins:
        levels.append(coarsen(levels[-1], config.level_factor))
    return levels


class PeakBuilder:
    """Bins decoded samples into level-0 columns as they arrive; thread-safe snapshots."""

    def __init__(self, sample_rate: int, config: PeaksConfig = PeaksConfig()):
        self.config = config
        self.sample_rate = int(sample_rate)
        self.samples_per_bin = max(1, round(sample_rate / config.bins_per_second))
        self._lock = threading.Lock()
        self._columns: list[np.ndarray] = []  # finished (n, 2) blocks of level 0
        self._pending: list[np.ndarray] = []  # decoded (channels, n) frames not yet binned
        self._pending_n = 0
        self._carry_lo = np.zeros(0, np.float32)  # samples of a column not yet complete
        self._carry_hi = np.zeros(0, np.float32)
        self._samples = 0
        self._levels_cache: list[np.ndarray] | None = None
        self.complete = False
        self.error: str | None = None

    def feed(self, samples: np.ndarray) -> None:
        """Add decoded float32 ``(channels, n)`` samples."""
        self._pending.append(samples)  # reduced a chunk at a time: one numpy call per frame is slow
        self._pending_n += samples.shape[1]
        if self._pending_n >= self.config.chunk_seconds * self.sample_rate:
            self._bin(final=False)

    def finish(self) -> None:
        self._bin(final=True)
        with self._lock:
            self.complete = True

    def fail(self, message: str) -> None:
        with self._lock:
            self.error = message

    def _bin(self, final: bool) -> None:
        if self._pending and len({frame.shape[0] for frame in self._pending}) == 1:
            chunk = np.concatenate(self._pending, axis=1)
            lo_parts, hi_parts = [chunk.min(axis=0)], [chunk.max(axis=0)]
        else:  # the channel count changed inside the chunk (rare): frame by frame
            lo_parts = [frame.min(axis=0) for frame in self._pending]
            hi_parts = [frame.max(axis=0) for frame in self._pending]
        lo = np.concatenate([self._carry_lo, *lo_parts])
        hi = np.concatenate([self._carry_hi, *hi_parts])
        self._pending, self._pending_n = [], 0
        spb = self.samples_per_bin
        whole = (lo.size // spb) * spb
        parts = [
            np.stack(
                [lo[:whole].reshape(-1, spb).min(axis=1), hi[:whole].reshape(-1, spb).max(axis=1)], axis=1
            )
        ]
        if final and whole < lo.size:
            parts.append(np.array([[lo[whole:].min(), hi[whole:].max()]], np.float32))
            self._carry_lo = self._carry_hi = np.zeros(0, np.float32)
        else:
            self._carry_lo, self._carry_hi = lo[whole:], hi[whole:]
        with self._lock:
            self._columns.extend(p.astype(np.float32, copy=False) for p in parts if p.size)
            self._samples += whole + (lo.size - whole if final else 0)
            self._levels_cache = None

    def progress(self) -> tuple[Seconds, bool, str | None]:
        """(seconds decoded, complete, error) without building a snapshot."""
        with self._lock:
            return self._samples / self.sample_rate, self.complete, self.error

    def snapshot(self) -> Peaks:
        with self._lock:
            if self._levels_cache is None:
                finest = np.concatenate(self._columns) if self._columns else np.zeros((0, 2), np.float32)
                self._columns = [finest]
                levels = build_levels(finest, self.config)
                if self.complete:
                    self._levels_cache = levels  # computed once; partial snapshots are rebuilt per request
            else:
                levels = self._levels_cache
            return Peaks(
                sample_rate=self.sample_rate,
                samples_per_bin=self.samples_per_bin,
                level_factor=self.config.level_factor,
                levels=levels,
                duration=self._samples / self.sample_rate,
                complete=self.complete,
                error=self.error,
            )


def _run(path: Path, config: PeaksConfig, ready: threading.Event, holder: dict) -> None:
    builder: PeakBuilder | None = None
    try:
        for info, samples in iter_frames(path):
            if builder is None:
                builder = PeakBuilder(info.sample_rate, config)
                holder["builder"] = builder
                ready.set()
            builder.feed(samples)
        assert builder is not None  # iter_frames raises when nothing decodes
        builder.finish()
    except AdcutError as error:
        holder["error"] = str(error)
        if builder is not None:
            builder.fail(str(error))
    except Exception as error:  # a thread must not die silently: the page shows the message
        log.exception("computing peaks failed")
        holder["error"] = f"{path}: cannot compute the waveform ({error})"
        if builder is not None:
            builder.fail(holder["error"])
    finally:
        ready.set()


class BackgroundPeaks:
    """Computes an episode's peaks in a daemon thread; ``snapshot()`` any time (partial until done)."""

    def __init__(self, path: Path, config: PeaksConfig = PeaksConfig()):
        self.path = Path(path)
        self.config = config
        self._ready = threading.Event()
        self._holder: dict = {}
        self._thread = threading.Thread(
            target=_run, args=(self.path, config, self._ready, self._holder), name="adcut-peaks", daemon=True
        )
        self._thread.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the whole file is done (True) or ``timeout`` passes (False)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def progress(self) -> tuple[Seconds, bool, str | None]:
        """(seconds decoded, complete, error), cheaply."""
        builder: PeakBuilder | None = self._holder.get("builder")
        if builder is None:
            return 0.0, not self._thread.is_alive(), self._holder.get("error")
        return builder.progress()

    def snapshot(self) -> Peaks:
        self._ready.wait(5.0)  # the first frame comes within milliseconds unless the file is broken
        builder: PeakBuilder | None = self._holder.get("builder")
        if builder is None:
            return Peaks(
                100,
                1,
                self.config.level_factor,
                [np.zeros((0, 2), np.float32)],
                0.0,
                complete=not self._thread.is_alive(),
                error=self._holder.get("error"),
            )
        return builder.snapshot()


def compute_peaks(path: Path, config: PeaksConfig = PeaksConfig()) -> Peaks:
    """All of ``path``'s peaks, synchronously (raises AdcutError for unreadable audio)."""
    builder: PeakBuilder | None = None
    for info, samples in iter_frames(path):
        if builder is None:
            builder = PeakBuilder(info.sample_rate, config)
        builder.feed(samples)
    assert builder is not None
    builder.finish()
    return builder.snapshot()
