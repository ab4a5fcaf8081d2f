"""Window probabilities of a whole episode, streamed from the decoder, and the per-step curve they make."""

from __future__ import annotations

import numpy as np

from adcut.core.units import Seconds

# Windows turned into a tensor at a time: bounds memory for multi-hour episodes at a fine hop.
WINDOW_CHUNK = 512


# The size of the time range of a long episode that detection decodes in its own process, relative
# to each range decoded by a child process (features/episode.py): 0.6 = 3/8 of the file on 2 cores.
LOCAL_SIZE = 0.6


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
    return np.stack([np.interp(grid, filled, means[:, c]) for c in range(curve.shape[1])], axis=1).astype(
        np.float32
    )


def predict_episode(
    model, features: np.ndarray, starts: np.ndarray, window_frames: int, *, batch_size: int, device: str
) -> np.ndarray:
    """Window probabilities, building windows a chunk at a time so memory stays small."""
    from adcut.features.mfcc import windows
    from adcut.models.inference import predict_windows

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
    from adcut.features.mfcc import deltas

    half = config.delta_width // 2
    lo = max(0, min(done - half, len(mfcc) - config.delta_width))  # the last rows need a whole window too
    part = mfcc[lo:]
    d1 = deltas(part, config.delta_width, 1)
    d2 = deltas(part, config.delta_width, 2)
    a, b = done - lo, upto - lo
    return np.concatenate([part[a:b], d1[a:b], d2[a:b]], axis=1).astype(np.float32)


def stream_window_probs(
    path,
    config,
    model,
    hop_frames: int,
    *,
    batch_size: int,
    device: str,
    decode_workers: int | None = None,
    stride: int = 1,
    calibrate=None,
    tap=None,
):
    """Decode, compute features and run the model at the same time: ``(features, starts, probs, duration)``.

    Decoding runs in a background thread (``audio.prefetch``), features in this one, and the model in
    a third as soon as enough windows are final, so on two cores the model's time hides behind the
    decoding. A long file is decoded by ``decode_workers`` processes at once (``features/episode.py``;
    None: one per core). ``stride`` > 1 reads every ``stride``-th window of the hop and the others
    only near changes (``scan.CoarseToFineScan``, judged on ``calibrate(probs)``); ``starts`` and
    ``probs`` (uncalibrated) are the windows read, in time order. With ``stride`` 1 the numbers
    equal ``episode_features`` followed by ``predict_episode`` over all windows. ``tap``: gets the
    file at its own rate from the same decode (``EpisodeMfcc``; speech recognition reads it).
    """
    from concurrent.futures import ThreadPoolExecutor

    from adcut.detect.scan import CoarseToFineScan, effective_stride
    from adcut.features.episode import EpisodeMfcc
    from adcut.features.mfcc import finish_features, window_starts
    from adcut.media.decode import probe

    width, window = config.delta_width, config.window_frames
    # This process decodes the first time range itself, a smaller one since it also runs the model
    # (measured with benchmarks/process_speed.py on 2 cores, 60 min MP3: 2.7 s against 3.0 s with
    # every range in a child process, now that the coarse-to-fine scan makes the model light).
    source = EpisodeMfcc(path, config, decode_workers, local_first=True, first_size=LOCAL_SIZE, tap=tap)
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
            futures.append(
                pool.submit(scan.advance, feats.rows, np.arange(ready, dtype=np.int64) * hop_frames)
            )
            submitted = ready

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="adcut-model") as pool:
        try:
            for part in source:
                mfcc.extend(part)
                upto = mfcc.n - width // 2
                if upto > feats.n and mfcc.n >= width:
                    feats.extend(_final_rows(mfcc.rows, feats.n, upto, config))
                    submit_ready(feats.n)
            all_mfcc = mfcc.rows[: config.frames_for(source.n_samples)]
            if len(all_mfcc) < width:  # shorter than the delta window: the padded path of finish_features
                feats = _GrowingRows(config.n_features)
                feats.extend(finish_features(all_mfcc, config))
                for future in futures:
                    future.cancel()
                futures = []
                scan = CoarseToFineScan(predict, scan.stride, calibrate)
            elif feats.n < len(all_mfcc):
                feats.extend(_final_rows(all_mfcc, feats.n, len(all_mfcc), config))
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
