"""MFCC + delta + delta-delta features for a whole episode, and the windows models read.

The numbers follow librosa (``feature.mfcc`` on ``power_to_db(melspectrogram, top_db=None)``,
``feature.delta`` with ``mode="interp"``) without depending on it at run time; the tests check
the match. One deliberate difference from ``librosa.feature.mfcc``'s default: no ``top_db`` clamp,
because that clamp is relative to the loudest frame of the whole input, which would make a
window's features depend on audio minutes away. An absolute floor (``amin``) is used instead.

Frames are computed in a streaming way (blocks of decoded audio in, frames out), so memory stays
small for multi-hour episodes; deltas are taken over the finished MFCC matrix.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import lru_cache

import numpy as np

from adcut.core.units import Seconds
from adcut.errors import ModelError

FEATURE_KIND = "mfcc-delta-v1"


@dataclass(frozen=True)
class FeatureConfig:
    """Everything that decides the numbers a model sees; stored with every dataset and checkpoint."""

    sample_rate: int = 4096  # Hz; ads vs. content differ well below 2 kHz, and decoding stays cheap
    n_fft: int = 512  # 125 ms analysis window
    hop_length: int = 256  # 62.5 ms between frames -> 16 frames per second
    n_mels: int = 128
    n_mfcc: int = 10
    delta_width: int = 5  # frames used for delta and delta-delta (Savitzky-Golay, as librosa)
    amin: float = 1e-10  # power floor before the log
    window_frames: int = 131  # 8.1875 s: the reference model's sequence length
    window_hop_frames: int = (
        64  # 4.0 s between windows, about half a window (4.096 s is not on the 62.5 ms frame grid)
    )
    kind: str = FEATURE_KIND

    @property
    def n_features(self) -> int:
        return 3 * self.n_mfcc  # MFCC, delta, delta-delta

    @property
    def frame_seconds(self) -> Seconds:
        return self.hop_length / self.sample_rate

    @property
    def window_seconds(self) -> Seconds:
        return self.window_frames * self.frame_seconds

    @property
    def window_hop_seconds(self) -> Seconds:
        return self.window_hop_frames * self.frame_seconds

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> FeatureConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ModelError(f"feature settings name unknown fields: {', '.join(sorted(unknown))}")
        return cls(**data)

    def frames_for(self, n_samples: int) -> int:
        """Frame count for ``n_samples`` of audio (centred frames, as librosa's ``center=True``)."""
        return 1 + n_samples // self.hop_length


def _hz_to_mel(hz: np.ndarray | float) -> np.ndarray:
    """Slaney mel scale: linear below 1 kHz, logarithmic above (librosa's default, htk=False)."""
    hz = np.asarray(hz, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = hz / f_sp
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    high = hz >= min_log_hz
    mels = np.where(high, min_log_mel + np.log(np.maximum(hz, min_log_hz) / min_log_hz) / logstep, mels)
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    min_log_hz, min_log_mel, logstep = 1000.0, 1000.0 / f_sp, np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), f_sp * mels)


@lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int) -> np.ndarray:
    """``(n_mels, 1 + n_fft // 2)`` triangular filters, Slaney-normalised (as ``librosa.filters.mel``)."""
    fft_freqs = np.linspace(0, sample_rate / 2, 1 + n_fft // 2)
    mel_points = _mel_to_hz(np.linspace(_hz_to_mel(0.0), _hz_to_mel(sample_rate / 2), n_mels + 2))
    widths = np.diff(mel_points)
    ramps = mel_points[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_points[2:] - mel_points[:-2]))[:, None]
    return weights.astype(np.float32)


@lru_cache(maxsize=8)
def dct_matrix(n_mfcc: int, n_mels: int) -> np.ndarray:
    """``(n_mfcc, n_mels)`` orthonormal DCT-II rows."""
    k = np.arange(n_mfcc)[:, None]
    n = np.arange(n_mels)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_mels)) * np.sqrt(2.0 / n_mels)
    basis[0] /= np.sqrt(2.0)
    return basis.astype(np.float32)


@lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)  # periodic


@lru_cache(maxsize=8)
def savgol_derivative_kernel(width: int, order: int) -> np.ndarray:
    """Weights giving the ``order``-th derivative of a degree-``order`` least-squares polynomial fit."""
    half = width // 2
    positions = np.arange(-half, half + 1, dtype=np.float64)
    vandermonde = positions[:, None] ** np.arange(order + 1)[None, :]
    coefficients = np.linalg.pinv(vandermonde)[order]  # c_order of the fit, per input sample
    return (coefficients * np.prod(np.arange(1, order + 1))).astype(np.float64)


class MfccStream:
    """Turns blocks of mono samples into MFCC frames, exactly as one call over the joined signal."""

    def __init__(self, config: FeatureConfig):
        self.config = config
        self._buffer = np.zeros(config.n_fft // 2, dtype=np.float32)  # centre padding (zeros)
        self._frames: list[np.ndarray] = []
        self.n_samples = 0

    def push(self, samples: np.ndarray) -> None:
        self.n_samples += len(samples)
        self._buffer = np.concatenate([self._buffer, np.asarray(samples, dtype=np.float32)])
        self._emit()

    def _emit(self) -> None:
        cfg = self.config
        usable = (len(self._buffer) - cfg.n_fft) // cfg.hop_length + 1
        if usable <= 0:
            return
        frames = np.lib.stride_tricks.sliding_window_view(self._buffer, cfg.n_fft)[:: cfg.hop_length][:usable]
        self._frames.append(mfcc_of_frames(frames, cfg))
        self._buffer = self._buffer[usable * cfg.hop_length :]

    def take(self) -> list[np.ndarray]:
        """Hand over the MFCC frames made so far (streaming callers; ``finish`` then returns only the rest)."""
        frames, self._frames = self._frames, []
        return frames

    def finish(self) -> np.ndarray:
        """All MFCC frames, ``(frames, n_mfcc)``."""
        cfg = self.config
        self._buffer = np.concatenate([self._buffer, np.zeros(cfg.n_fft // 2, np.float32)])
        self._emit()
        expected = cfg.frames_for(self.n_samples)
        mfcc = np.concatenate(self._frames) if self._frames else np.zeros((0, cfg.n_mfcc), np.float32)
        return mfcc[:expected]


def mfcc_of_frames(frames: np.ndarray, config: FeatureConfig, chunk: int = 4096) -> np.ndarray:
    """MFCCs of ``(n, n_fft)`` sample frames, ``(n, n_mfcc)``; chunked so the spectra stay small."""
    window = _hann(config.n_fft)
    mel_t = mel_filterbank(config.sample_rate, config.n_fft, config.n_mels).T  # (bins, mels)
    dct_t = dct_matrix(config.n_mfcc, config.n_mels).T  # (mels, n_mfcc)
    out = np.empty((len(frames), config.n_mfcc), dtype=np.float32)
    for start in range(0, len(frames), chunk):
        spectrum = np.fft.rfft(frames[start : start + chunk] * window, axis=1)  # (n, bins)
        power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
        mel_db = 10.0 * np.log10(np.maximum(power @ mel_t, config.amin))  # (n, mels)
        out[start : start + chunk] = mel_db @ dct_t
    return out


def deltas(values: np.ndarray, width: int, order: int) -> np.ndarray:
    """Savitzky-Golay derivative along time (axis 0), edges as librosa's ``mode='interp'``.

    With polynomial degree equal to the derivative order the derivative of the fit is constant,
    so each edge frame takes the value of the first (or last) full window.
    """
    n = len(values)
    if n < width:
        raise ValueError(f"need at least {width} frames for deltas, got {n}")
    kernel = savgol_derivative_kernel(width, order)
    windows = np.lib.stride_tricks.sliding_window_view(
        values.astype(np.float64), width, axis=0
    )  # (n-w+1, d, w)
    inner = windows @ kernel  # (n-w+1, d)
    half = width // 2
    return np.concatenate([np.repeat(inner[:1], half, 0), inner, np.repeat(inner[-1:], half, 0)]).astype(
        np.float32
    )


def finish_features(mfcc: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """``(frames, 3 * n_mfcc)``: MFCC, delta, delta-delta side by side."""
    if len(mfcc) < config.delta_width:
        pad = np.repeat(
            mfcc[-1:] if len(mfcc) else np.zeros((1, config.n_mfcc), np.float32),
            config.delta_width - len(mfcc),
            0,
        )
        mfcc = np.concatenate([mfcc, pad])
    return np.concatenate(
        [mfcc, deltas(mfcc, config.delta_width, 1), deltas(mfcc, config.delta_width, 2)], axis=1
    ).astype(np.float32)


def compute_features(samples: np.ndarray, config: FeatureConfig) -> np.ndarray:
    """Features of a whole mono signal at ``config.sample_rate``: ``(frames, n_features)``."""
    stream = MfccStream(config)
    stream.push(samples)
    return finish_features(stream.finish(), config)


def window_starts(n_frames: int, window_frames: int, hop_frames: int) -> np.ndarray:
    """First frame of each window; the last window is moved back to end at the last frame.

    An episode shorter than one window gets a single window starting at 0 (see ``windows``).
    """
    if n_frames <= window_frames:
        return np.zeros(1, dtype=np.int64)
    starts = np.arange(0, n_frames - window_frames + 1, hop_frames, dtype=np.int64)
    if starts[-1] != n_frames - window_frames:
        starts = np.append(starts, n_frames - window_frames)
    return starts


def windows(features: np.ndarray, starts: np.ndarray, window_frames: int) -> np.ndarray:
    """``(len(starts), window_frames, n_features)`` view-like copy; short inputs are edge-padded."""
    if len(features) < window_frames:
        pad = np.repeat(features[-1:], window_frames - len(features), 0)
        features = np.concatenate([features, pad])
    view = np.lib.stride_tricks.sliding_window_view(features, window_frames, axis=0)  # (n, d, w)
    return np.ascontiguousarray(view[starts].transpose(0, 2, 1))


def check_compatible(expected: FeatureConfig, actual: FeatureConfig, what: str) -> None:
    """Raise ModelError naming the differing settings when two feature configs differ."""
    if expected == actual:
        return
    diffs = [
        f"{f.name} {getattr(expected, f.name)} vs {getattr(actual, f.name)}"
        for f in fields(FeatureConfig)
        if getattr(expected, f.name) != getattr(actual, f.name)
    ]
    raise ModelError(f"{what} was made with other feature settings ({'; '.join(diffs)})")
