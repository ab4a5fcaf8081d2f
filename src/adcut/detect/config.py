"""How an episode is turned into segments: the settings shared by process, evaluate and the labeller."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from adcut.core.segments import CUT_CLASSES
from adcut.core.units import Seconds
from adcut.detect.refine import PREFERENCES, RefineConfig
from adcut.detect.smoothing import (
    DEFAULT_MIN_AD_SECONDS,
    DEFAULT_MIN_CONTENT_SECONDS,
    KEEP_CONTENT_COST,
    SmoothingConfig,
)
from adcut.detect.words import WordsConfig
from adcut.errors import AdcutError

if TYPE_CHECKING:
    from adcut.models.checkpoint import Checkpoint


# Where inside its window a model's decision points, as a fraction of the window (0 = first
# frame, 1 = last). An LSTM that decides at its last step mostly judges the window's end; the
# measured value per model type belongs here (issue 4 measures and sets it).
# lstm 0.45: measured by benchmarks/segmentation_quality.py (windows straddling a break trained with their majority label).
WINDOW_ANCHORS: dict[str, float] = {"lstm": 0.45, "transformer": 0.5}


DEFAULT_ANCHOR = 0.5


@dataclass(frozen=True)
class SegmentationConfig:
    """How an episode is turned into segments (``adcut process`` flags override these)."""

    hop_seconds: Seconds = 1.0  # between window starts (the fine grid of windows)
    scan_stride: int = 4  # read every 4th window first, the rest only near changes (scan.py); 1: every window
    step_seconds: Seconds = 0.5  # resolution of the probability curve the smoother reads
    batch_size: int = 64  # measured: 64 runs the reference LSTM faster than 256 on a CPU, in less memory
    anchor: float | None = None  # None: the checkpoint's measured value, else WINDOW_ANCHORS
    smoothing: SmoothingConfig = field(
        default_factory=SmoothingConfig
    )  # minimums None: learned (resolve_minimums)
    edge_offsets: bool = (
        True  # move ad starts/ends back by the checkpoint's measured lateness (learn/alignment.py)
    )
    refine: RefineConfig | None = field(default_factory=RefineConfig)  # None: boundaries stay where smoothed
    review_below: float | None = None  # segments less confident than this become "review" (not cut)
    review_classes: tuple[str, ...] = CUT_CLASSES  # classes that may be marked for review
    words: WordsConfig | None = None  # sponsor phrases heard in the speech (detect/words.py); None: off

    def __post_init__(self) -> None:
        if self.scan_stride < 1:
            raise AdcutError(f"--scan-stride must be at least 1, not {self.scan_stride}")
        if not 0.05 <= self.step_seconds <= 10:
            raise AdcutError(f"step must be between 0.05 and 10 s, not {self.step_seconds:g}")
        if self.batch_size < 1:
            raise AdcutError(f"batch size must be at least 1, not {self.batch_size}")
        if self.anchor is not None and not 0.0 <= self.anchor <= 1.0:
            raise AdcutError(f"anchor must be a fraction between 0 and 1, not {self.anchor:g}")
        if self.review_below is not None and not 0.0 <= self.review_below <= 1.0:
            raise AdcutError(
                f"--review-below must be a probability between 0 and 1, not {self.review_below:g}"
            )

    @property
    def prefer(self) -> str:
        """``--prefer``: the refinement's, or without refinement what the smoother's content cost says."""
        if self.refine is not None:
            return self.refine.prefer
        return "keep-content" if self.smoothing.content_cost >= 1.0 else "remove-ads"

    def validate(self, window_seconds: Seconds, frame_seconds: Seconds) -> None:
        """What depends on the model's features: the hop lies between one frame and one window."""
        if not frame_seconds <= self.hop_seconds <= window_seconds + 1e-9:
            raise AdcutError(
                f"--hop must be between {frame_seconds:g} and {window_seconds:.3f} s (the window), not {self.hop_seconds:g}"
            )

    def settings(self) -> dict[str, Any]:
        """The settings as the flat record that outputs carry (``adcut process``'s JSON ``settings``)."""
        return {
            "hop_seconds": self.hop_seconds,
            "scan_stride": self.scan_stride,
            "step_seconds": self.step_seconds,
            "batch_size": self.batch_size,
            "anchor": self.anchor,
            "smoothing": self.smoothing.method,
            "min_ad_seconds": self.smoothing.min_ad_seconds,
            "min_content_seconds": self.smoothing.min_content_seconds,
            "edge_offsets": self.edge_offsets,
            "refine": self.refine is not None,
            "refine_max_shift": (self.refine or RefineConfig()).max_shift_seconds,
            "refine_method": self.refine.method if self.refine else None,
            "prefer": self.prefer,
            "content_cost": round(self.smoothing.content_cost, 4),
            "review_below": self.review_below,
            "review_classes": list(self.review_classes),
            **(self.words.settings() if self.words is not None else {"words": "off"}),
        }


# ``--prefer``: the seconds of ad left in that weigh as much as a second of content cut, in the
# smoother's decision (the refinement moves edges by the same preference).
PREFERENCE_CONTENT_COST = {"keep-content": KEEP_CONTENT_COST, "remove-ads": 1.0 / KEEP_CONTENT_COST}


def with_preference(config: SegmentationConfig, prefer: str) -> SegmentationConfig:
    """``config`` with ``--prefer`` applied to both the smoother's decision and the refined edges."""
    if prefer not in PREFERENCES:
        raise AdcutError(f"--prefer must be one of {', '.join(PREFERENCES)}, not {prefer!r}")
    smoothing = replace(config.smoothing, content_cost=PREFERENCE_CONTENT_COST[prefer])
    refine = replace(config.refine, prefer=prefer) if config.refine is not None else None
    return replace(config, smoothing=smoothing, refine=refine)


def anchor_for(checkpoint: Checkpoint, config: SegmentationConfig) -> float:
    """The window anchor: the config's, else the checkpoint's measured one, else the type's default."""
    if config.anchor is not None:
        return config.anchor
    measured = (checkpoint.metrics or {}).get("window_anchor")
    if isinstance(measured, (int, float)) and 0.0 <= measured <= 1.0:
        return float(measured)
    return WINDOW_ANCHORS.get(checkpoint.model_type, DEFAULT_ANCHOR)


# Minimum durations learned from training labels: half the shortest labelled segment of the class
# (a safety margin: an unseen ad may be shorter than every one seen), never above the smoother's
# default and never below MIN_LEARNED_SECONDS (shorter runs are model noise, not segments).
LEARNED_MIN_FRACTION = 0.5


MIN_LEARNED_SECONDS = 3.0


def learned_minimum(stats: dict | None, default: Seconds) -> Seconds:
    """The minimum duration for one class from its training-label statistics (``{"count", "min", ...}``)."""
    if (
        not isinstance(stats, dict)
        or not stats.get("count")
        or not isinstance(stats.get("min"), (int, float))
    ):
        return default
    return float(min(default, max(MIN_LEARNED_SECONDS, LEARNED_MIN_FRACTION * float(stats["min"]))))


def resolve_minimums(checkpoint: Checkpoint, config: SegmentationConfig) -> SegmentationConfig:
    """``config`` with both minimum durations set: explicit values, else learned from the checkpoint's
    training labels (``training["label_durations"]``), else the smoother's defaults (10 s / 20 s)."""
    stats = (checkpoint.training or {}).get("label_durations") or {}
    classes = tuple(checkpoint.class_names)
    ad, content = config.smoothing.min_ad_seconds, config.smoothing.min_content_seconds
    if ad is None:
        ad = learned_minimum(stats.get(classes[0]), DEFAULT_MIN_AD_SECONDS)
    if content is None:  # every other class shares the content minimum: the smallest learned one
        content = min(
            (learned_minimum(stats.get(c), DEFAULT_MIN_CONTENT_SECONDS) for c in classes[1:]),
            default=DEFAULT_MIN_CONTENT_SECONDS,
        )
    smoothing = replace(config.smoothing, min_ad_seconds=float(ad), min_content_seconds=float(content))
    return replace(config, smoothing=smoothing)


def edge_offsets_for(checkpoint: Checkpoint, config: SegmentationConfig) -> dict[str, float]:
    """The checkpoint's measured ad start/end lateness in seconds (``{}``: none measured, or turned off)."""
    measured = (checkpoint.metrics or {}).get("edge_offsets")
    if not config.edge_offsets or not isinstance(measured, dict):
        return {}
    return {k: float(v) for k, v in measured.items() if k in ("start", "end") and isinstance(v, (int, float))}
