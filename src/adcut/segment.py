"""Whole episode -> per-step class probability curve -> segments that tile the episode."""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from adcut.errors import AdcutError
from adcut.labels import TIME_EPSILON, Segment

log = logging.getLogger(__name__)

Seconds = float

# Where inside its window a model's decision points, as a fraction of the window (0 = first
# frame, 1 = last). An LSTM that decides at its last step mostly judges the window's end; the
# measured value per model type belongs here (issue 4 measures and sets it).
# lstm 0.45: measured by benchmarks/segmentation_quality.py (windows straddling a break trained with their majority label).
WINDOW_ANCHORS: dict[str, float] = {"lstm": 0.45, "transformer": 0.5}
DEFAULT_ANCHOR = 0.5
# Windows turned into a tensor at a time: bounds memory for multi-hour episodes at a fine hop.
WINDOW_CHUNK = 512
# The size of the time range of a long episode that detection decodes in its own process, relative
# to each range decoded by a child process (parallel_decode): 0.6 = 3/8 of the file on 2 cores.
LOCAL_SIZE = 0.6


@dataclass(frozen=True)
class SegmentationConfig:
    """How an episode is turned into segments (``adcut process`` flags override these)."""

    hop_seconds: Seconds = 1.0  # between window starts (the fine grid of windows)
    scan_stride: int = 4  # read every 4th window first, the rest only near changes (scan.py); 1: every window
    step_seconds: Seconds = 0.5  # resolution of the probability curve the smoother reads
    batch_size: int = 64  # measured: 64 runs the reference LSTM faster than 256 on a CPU, in less memory
    anchor: float | None = None  # None: the checkpoint's measured value, else WINDOW_ANCHORS
    smoothing: str = "hmm"  # "hmm" | "reference" | "none" (see smoothing.py)
    min_ad_seconds: Seconds | None = None  # None: learned from the training labels, else the smoother's default (resolve_minimums)
    min_content_seconds: Seconds | None = None
    edge_offsets: bool = True  # move ad starts/ends back by the checkpoint's measured lateness (alignment.py)
    refine: bool = True  # move boundaries to nearby pauses / feature jumps (refine.py)
    refine_max_shift: Seconds = 3.0
    review_below: float | None = None  # segments less confident than this become "review" (not cut)
    review_classes: tuple[str, ...] = ("ad",)  # classes that may be marked for review

    def validate(self, window_seconds: Seconds, frame_seconds: Seconds) -> None:
        if not frame_seconds <= self.hop_seconds <= window_seconds + 1e-9:
            raise AdcutError(
                f"--hop must be between {frame_seconds:g} and {window_seconds:.3f} s (the window), not {self.hop_seconds:g}"
            )
        if self.scan_stride < 1:
            raise AdcutError(f"--scan-stride must be at least 1, not {self.scan_stride}")
        if not 0.05 <= self.step_seconds <= 10:
            raise AdcutError(f"step must be between 0.05 and 10 s, not {self.step_seconds:g}")
        if self.batch_size < 1:
            raise AdcutError(f"batch size must be at least 1, not {self.batch_size}")
        if self.anchor is not None and not 0.0 <= self.anchor <= 1.0:
            raise AdcutError(f"anchor must be a fraction between 0 and 1, not {self.anchor:g}")
        if self.smoothing not in ("hmm", "reference", "none"):
            raise AdcutError(f"--smoothing must be hmm, reference or none, not {self.smoothing!r}")
        if self.review_below is not None and not 0.0 <= self.review_below <= 1.0:
            raise AdcutError(f"--review-below must be a probability between 0 and 1, not {self.review_below:g}")


@dataclass
class Detection:
    """What ``detect`` found in one episode."""

    path: Path
    duration: Seconds
    classes: tuple[str, ...]
    segments: list[Segment]  # tiles [0, duration]
    confidences: list[float]  # mean probability of each segment's own class
    step_seconds: Seconds
    probabilities: np.ndarray  # (n_steps, n_classes); step k covers [k*step, (k+1)*step)
    model_id: str
    settings: dict = field(default_factory=dict)

    @property
    def boundaries(self) -> list[Seconds]:
        return [b.start for a, b in zip(self.segments, self.segments[1:]) if a.label != b.label]

    def per_second(self) -> np.ndarray:
        """The probability curve averaged onto a 1 s grid, ``(ceil(duration), n_classes)``."""
        return resample_curve(self.probabilities, self.step_seconds, 1.0, self.duration)


# --------------------------------------------------------------------------- probability curve


def anchor_for(checkpoint, config: SegmentationConfig) -> float:
    """The window anchor: the config's, else the checkpoint's measured one, else the type's default."""
    if config.anchor is not None:
        return config.anchor
    measured = (checkpoint.metrics or {}).get("window_anchor")
    if isinstance(measured, (int, float)) and 0.0 <= measured <= 1.0:
        return float(measured)
    return WINDOW_ANCHORS.get(checkpoint.model_type, DEFAULT_ANCHOR)


def window_curve(
    window_probs: np.ndarray,
    starts: np.ndarray,
    window_frames: int,
    frame_seconds: Seconds,
    anchor: float,
    step_seconds: Seconds,
    duration: Seconds,
) -> np.ndarray:
    """Spread window probabilities onto a step grid: each window counts at its anchor time.

    Windows whose anchors fall in the same step are averaged; steps without an anchor are
    linearly interpolated between their neighbours (held flat beyond the first and last anchor).
    """
    n_steps = max(1, int(np.ceil(duration / step_seconds - 1e-9)))
    n_classes = window_probs.shape[1]
    times = (starts + anchor * window_frames) * frame_seconds
    bins = np.clip((times / step_seconds).astype(np.int64), 0, n_steps - 1)
    sums = np.zeros((n_steps, n_classes))
    counts = np.zeros(n_steps)
    np.add.at(sums, bins, window_probs)
    np.add.at(counts, bins, 1)
    filled = np.flatnonzero(counts)
    means = sums[filled] / counts[filled, None]
    grid = np.arange(n_steps)
    curve = np.stack([np.interp(grid, filled, means[:, c]) for c in range(n_classes)], axis=1)
    return (curve / curve.sum(axis=1, keepdims=True)).astype(np.float32)


def resample_curve(curve: np.ndarray, step: Seconds, new_step: Seconds, duration: Seconds) -> np.ndarray:
    """Average a step curve onto a coarser (or finer) grid of ``new_step`` seconds."""
    n_new = max(1, int(np.ceil(duration / new_step - 1e-9)))
    centres = (np.arange(len(curve)) + 0.5) * step
    bins = np.clip((centres / new_step).astype(np.int64), 0, n_new - 1)
    sums = np.zeros((n_new, curve.shape[1]))
    counts = np.zeros(n_new)
    np.add.at(sums, bins, curve)
    np.add.at(counts, bins, 1)
    filled = np.flatnonzero(counts)
    if len(filled) == n_new:
        return (sums / counts[:, None]).astype(np.float32)
    means = sums[filled] / counts[filled, None]
    grid = np.arange(n_new)
    return np.stack([np.interp(grid, filled, means[:, c]) for c in range(curve.shape[1])], axis=1).astype(np.float32)


def predict_episode(model, features: np.ndarray, starts: np.ndarray, window_frames: int, *, batch_size: int, device: str) -> np.ndarray:
    """Window probabilities, building windows a chunk at a time so memory stays small."""
    from adcut.features import windows
    from adcut.inference import predict_windows

    out = []
    for first in range(0, len(starts), WINDOW_CHUNK):
        chunk = windows(features, starts[first : first + WINDOW_CHUNK], window_frames)
        out.append(predict_windows(model, chunk, batch_size=batch_size, device=device))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


class _GrowingRows:
    """Rows appended as they become final; capacity doubles (never a copy of everything per block)."""

    def __init__(self, n_columns: int, capacity: int = 4096):
        self.data = np.zeros((max(capacity, 16), n_columns), np.float32)
        self.n = 0

    def extend(self, rows: np.ndarray) -> None:
        if self.n + len(rows) > len(self.data):
            bigger = np.zeros((max(2 * len(self.data), self.n + len(rows)), self.data.shape[1]), np.float32)
            bigger[: self.n] = self.data[: self.n]
            self.data = bigger
        self.data[self.n : self.n + len(rows)] = rows
        self.n += len(rows)

    @property
    def rows(self) -> np.ndarray:
        return self.data[: self.n]


def _final_rows(mfcc: np.ndarray, done: int, upto: int, config) -> np.ndarray:
    """Features of frames ``[done, upto)`` from the MFCCs so far, equal to those of the whole episode.

    Deltas at frame i read MFCC frames i-h..i+h (h = delta_width // 2), so frames up to ``len - h``
    are final; computing them on a slice starting h frames early gives exactly the same numbers.
    """
    from adcut.features import deltas

    half = config.delta_width // 2
    lo = max(0, min(done - half, len(mfcc) - config.delta_width))  # the last rows need a whole window too
    part = mfcc[lo:]
    d1 = deltas(part, config.delta_width, 1)
    d2 = deltas(part, config.delta_width, 2)
    a, b = done - lo, upto - lo
    return np.concatenate([part[a:b], d1[a:b], d2[a:b]], axis=1).astype(np.float32)


def stream_window_probs(path, config, model, hop_frames: int, *, batch_size: int, device: str,
                        decode_workers: int | None = None, stride: int = 1, calibrate=None):
    """Decode, compute features and run the model at the same time: ``(features, starts, probs, duration)``.

    Decoding runs in a background thread (``audio.prefetch``), features in this one, and the model in
    a third as soon as enough windows are final, so on two cores the model's time hides behind the
    decoding. A long file is decoded by ``decode_workers`` processes at once (``parallel_decode``;
    None: one per core). ``stride`` > 1 reads every ``stride``-th window of the hop and the others
    only near changes (``scan.CoarseToFineScan``, judged on ``calibrate(probs)``); ``starts`` and
    ``probs`` (uncalibrated) are the windows read, in time order. With ``stride`` 1 the numbers
    equal ``episode_features`` followed by ``predict_episode`` over all windows.
    """
    from concurrent.futures import ThreadPoolExecutor

    from adcut.audio import probe
    from adcut.features import finish_features, window_starts
    from adcut.parallel_decode import EpisodeMfcc
    from adcut.scan import CoarseToFineScan, effective_stride

    width, window = config.delta_width, config.window_frames
    # This process decodes the first time range itself, a smaller one since it also runs the model
    # (measured with benchmarks/process_speed.py on 2 cores, 60 min MP3: 2.7 s against 3.0 s with
    # every range in a child process, now that the coarse-to-fine scan makes the model light).
    source = EpisodeMfcc(path, config, decode_workers, local_first=True, first_size=LOCAL_SIZE)
    # Sized from the declared duration (plus a margin) so that a long episode is not copied as it grows.
    declared = probe(path).duration or 0.0
    capacity = config.frames_for(int(declared * 1.02 * config.sample_rate)) + 64
    mfcc = _GrowingRows(config.n_mfcc, capacity)
    feats = _GrowingRows(config.n_features, capacity)

    def predict(features, starts):  # looked up at call time: tests replace predict_episode
        return predict_episode(model, features, starts, window, batch_size=batch_size, device=device)

    scan = CoarseToFineScan(predict, effective_stride(stride, hop_frames, window), calibrate)
    futures = []
    submitted = 0  # fine windows handed to the model thread so far (their starts are multiples of hop_frames)

    def submit_ready(final_frames: int) -> None:
        nonlocal submitted
        ready = max(0, (final_frames - window) // hop_frames + 1) if final_frames >= window else 0
        if scan.coarse_count(submitted, ready) >= batch_size:
            # Rows below feats.n never change (new rows go after them, or into a new buffer), so the
            # model thread may read this view while the buffer grows.
            futures.append(pool.submit(scan.advance, feats.rows, np.arange(ready, dtype=np.int64) * hop_frames))
            submitted = ready

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="adcut-model") as pool:
        try:
            for part in source:
                mfcc.extend(part)
                upto = mfcc.n - width // 2
                if upto > feats.n and mfcc.n >= width:
                    feats.extend(_final_rows(mfcc.rows, feats.n, upto, config))
                    submit_ready(feats.n)
            mfcc = mfcc.rows[: config.frames_for(source.n_samples)]
            if len(mfcc) < width:  # shorter than the delta window: the padded path of finish_features
                feats = _GrowingRows(config.n_features)
                feats.extend(finish_features(mfcc, config))
                for future in futures:
                    future.cancel()
                futures = []
                scan = CoarseToFineScan(predict, scan.stride, calibrate)
            elif feats.n < len(mfcc):
                feats.extend(_final_rows(mfcc, feats.n, len(mfcc), config))
            features = feats.rows
            starts = window_starts(len(features), window, hop_frames)
            for future in futures:
                future.result()
            scan.advance(features, starts, final=True)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    index, probs = scan.result()
    return features, starts[index], probs, source.n_samples / config.sample_rate


# --------------------------------------------------------------------------- segments


def make_tiling(segments: list[Segment], duration: Seconds) -> list[Segment]:
    """Force an exact tiling of [0, duration]: drop empty spans, close gaps, merge equal neighbours."""
    tiled: list[Segment] = []
    for seg in sorted(segments):
        start = tiled[-1].end if tiled else 0.0
        end = min(max(seg.end, start), duration)
        if end - start <= TIME_EPSILON:
            continue
        if tiled and tiled[-1].label == seg.label:
            tiled[-1] = Segment(tiled[-1].start, end, seg.label)
        else:
            tiled.append(Segment(start, end, seg.label))
    if not tiled:
        raise AdcutError("no segments could be made (episode too short?)")
    last = tiled[-1]
    tiled[-1] = Segment(last.start, duration, last.label)  # the last one always ends at the audio's end
    return tiled


# Minimum durations learned from training labels: half the shortest labelled segment of the class
# (a safety margin: an unseen ad may be shorter than every one seen), never above the smoother's
# default and never below MIN_LEARNED_SECONDS (shorter runs are model noise, not segments).
LEARNED_MIN_FRACTION = 0.5
MIN_LEARNED_SECONDS = 3.0


def learned_minimum(stats: dict | None, default: Seconds) -> Seconds:
    """The minimum duration for one class from its training-label statistics (``{"count", "min", ...}``)."""
    if not isinstance(stats, dict) or not stats.get("count") or not isinstance(stats.get("min"), (int, float)):
        return default
    return float(min(default, max(MIN_LEARNED_SECONDS, LEARNED_MIN_FRACTION * float(stats["min"]))))


def resolve_minimums(checkpoint, config: SegmentationConfig) -> SegmentationConfig:
    """``config`` with both minimum durations set: explicit values, else learned from the checkpoint's
    training labels (``training["label_durations"]``), else the smoother's defaults (10 s / 20 s)."""
    from dataclasses import replace

    from adcut.smoothing import SmoothingConfig

    default = SmoothingConfig()
    stats = ((getattr(checkpoint, "training", None) or {}).get("label_durations") or {})
    classes = tuple(checkpoint.class_names)
    ad, content = config.min_ad_seconds, config.min_content_seconds
    if ad is None:
        ad = learned_minimum(stats.get(classes[0]), default.min_ad_seconds)
    if content is None:  # every other class shares the content minimum: the smallest learned one
        content = min((learned_minimum(stats.get(c), default.min_content_seconds) for c in classes[1:]),
                      default=default.min_content_seconds)
    return replace(config, min_ad_seconds=float(ad), min_content_seconds=float(content))


def smooth_curve(curve, step_seconds, duration, classes, config: SegmentationConfig) -> list[Segment]:
    from adcut import smoothing

    options = {"method": config.smoothing}
    if config.min_ad_seconds is not None:
        options["min_ad_seconds"] = config.min_ad_seconds
    if config.min_content_seconds is not None:
        options["min_content_seconds"] = config.min_content_seconds
    return smoothing.smooth(curve, step_seconds, duration, classes, smoothing.SmoothingConfig(**options))


def edge_offsets_for(checkpoint, config: SegmentationConfig) -> dict:
    """The checkpoint's measured ad start/end lateness in seconds (``{}``: none measured, or turned off)."""
    measured = (checkpoint.metrics or {}).get("edge_offsets")
    if not config.edge_offsets or not isinstance(measured, dict):
        return {}
    return {k: float(v) for k, v in measured.items() if k in ("start", "end") and isinstance(v, (int, float))}


def align_edges(segments, checkpoint, config: SegmentationConfig, classes: tuple[str, ...]) -> list[Segment]:
    """Smoothed segments with each ad edge moved back by its measured offset (within the minimum durations)."""
    from adcut.alignment import shift_edges

    offsets = edge_offsets_for(checkpoint, config)
    if not offsets or not classes:
        return segments
    minimums = {c: (config.min_ad_seconds if i == 0 else config.min_content_seconds) or 0.0 for i, c in enumerate(classes)}
    return shift_edges(segments, classes[0], offsets, minimums)


def refine(segments, features, feature_config, config: SegmentationConfig, classes: tuple[str, ...] = ()) -> list[Segment]:
    if not config.refine or len(segments) < 2:
        return segments
    from adcut.refine import refine_boundaries
    from adcut.smoothing import SmoothingConfig

    # Refinement must not undo the smoother's minimum durations (first class: ad minimum, others: content).
    default = SmoothingConfig()
    first = config.min_ad_seconds if config.min_ad_seconds is not None else default.min_ad_seconds
    other = config.min_content_seconds if config.min_content_seconds is not None else default.min_content_seconds
    minimums = {c: (first if i == 0 else other) for i, c in enumerate(classes)}
    # Ad edges may move further into the ad than out of it (cutting ads must not cost content).
    return refine_boundaries(segments, features, feature_config, config.refine_max_shift, min_seconds=minimums,
                             shrink_label=classes[0] if classes else None)


def _best_class_confidence(segment: Segment, curve: np.ndarray, step_seconds: Seconds) -> float:
    centres = (np.arange(len(curve)) + 0.5) * step_seconds
    inside = (centres >= segment.start) & (centres < segment.end)
    if not inside.any():
        inside[min(int(segment.start // step_seconds), len(curve) - 1)] = True
    return float(curve[inside].mean(axis=0).max())


def model_id(checkpoint) -> str:
    """``name@sha12`` of the checkpoint file (or its type when it was never saved)."""
    if checkpoint.path is None:
        return checkpoint.name
    digest = hashlib.sha256()
    with open(checkpoint.path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"{checkpoint.path.name}@{digest.hexdigest()[:12]}"


def detect(path, checkpoint, config: SegmentationConfig | None = None, device: str = "cpu", model=None,
           threads: int | None = None) -> Detection:
    """Decode ``path``, run ``checkpoint``'s model over it and return its tiling segments.

    ``model`` may be passed to reuse an already built predictor (folder mode builds it once).
    """
    from adcut.features import window_starts
    from adcut.inference import build_predictor, set_torch_threads, uses_torch
    from adcut.review import REVIEW_LABEL, calibrate_probs, mark_review, segment_confidences

    config = config or SegmentationConfig()
    fcfg = checkpoint.feature_config
    config.validate(fcfg.window_seconds, fcfg.frame_seconds)
    config = resolve_minimums(checkpoint, config)
    if threads is None:  # decoding has a core of its own while the model runs (see stream_window_probs)
        threads = max(1, (os.cpu_count() or 1) - 1) if not os.environ.get("ADCUT_THREADS") else None
    if model is None:
        model = build_predictor(checkpoint, device)  # an LSTM on a CPU runs in numpy: no torch import
    if uses_torch(model):
        set_torch_threads(threads)
    hop_frames = max(1, int(round(config.hop_seconds / fcfg.frame_seconds)))
    temperature = (checkpoint.metrics or {}).get("temperature")
    features, starts, probs, duration = stream_window_probs(
        path, fcfg, model, hop_frames, batch_size=config.batch_size, device=device, stride=config.scan_stride,
        calibrate=lambda p: calibrate_probs(p, temperature),
    )
    if duration <= 0:
        raise AdcutError(f"{path}: contains no audio samples")
    probs = calibrate_probs(probs, temperature)
    anchor = anchor_for(checkpoint, config)
    curve = window_curve(probs, starts, fcfg.window_frames, fcfg.frame_seconds, anchor, config.step_seconds, duration)
    classes = tuple(checkpoint.class_names)
    segments = make_tiling(smooth_curve(curve, config.step_seconds, duration, classes, config), duration)
    segments = make_tiling(align_edges(segments, checkpoint, config, classes), duration)
    segments = make_tiling(refine(segments, features, fcfg, config, classes), duration)
    confidences = segment_confidences(segments, curve, config.step_seconds, classes)
    if config.review_below is not None:
        segments = mark_review(segments, confidences, config.review_below, only=config.review_classes)
        confidences = segment_confidences(segments, curve, config.step_seconds, classes)
        # a review segment's confidence is that of the class it was unsure about
        confidences = [_best_class_confidence(s, curve, config.step_seconds) if s.label == REVIEW_LABEL else c
                       for s, c in zip(segments, confidences)]
    settings = {**asdict(config), "anchor": anchor, "measured_edge_offsets": edge_offsets_for(checkpoint, config),
                "windows": len(window_starts(len(features), fcfg.window_frames, hop_frames)),
                "windows_read": int(len(starts)), "window_seconds": fcfg.window_seconds}
    return Detection(
        path=Path(path),
        duration=float(duration),
        classes=classes,
        segments=segments,
        confidences=confidences,
        step_seconds=config.step_seconds,
        probabilities=curve,
        model_id=model_id(checkpoint),
        settings=settings,
    )
