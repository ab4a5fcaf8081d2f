"""The segmentation flags shared by ``process``, ``evaluate`` and ``label --model``, and the settings they make.

Defaults live in the settings dataclasses only; the help text reads them from there.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from adcut.detect.config import SegmentationConfig
from adcut.detect.smoothing import METHODS, SmoothingConfig
from adcut.features.mfcc import FeatureConfig


def add_segmentation_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags that override :class:`SegmentationConfig` (every default: None, meaning the config's)."""
    config, smoothing, features = SegmentationConfig(), SmoothingConfig(), FeatureConfig()
    group = parser.add_argument_group("segmentation (how window probabilities become segments)")
    group.add_argument(
        "--smoothing",
        choices=METHODS,
        default=None,
        help=f"hmm: minimum-duration HMM; reference: the reference project's four forgiving rules "
        f"on {smoothing.reference_hop_seconds:g} s blocks; none: most probable class per step "
        f"(default {config.smoothing})",
    )
    group.add_argument(
        "--hop",
        type=float,
        default=None,
        metavar="S",
        help=f"seconds between model windows, from one feature frame to one window "
        f"({features.frame_seconds:g} to {features.window_seconds:.2f} with the default features; "
        f"default {config.hop_seconds:g}; larger is faster, coarser)",
    )
    group.add_argument(
        "--scan-stride",
        type=int,
        default=None,
        metavar="N",
        help=f"read every Nth window first and every window only near class changes or where the "
        f"model is unsure (default {config.scan_stride}, at most half a window apart; 1: read "
        f"every window)",
    )
    group.add_argument(
        "--step",
        type=float,
        default=None,
        metavar="S",
        help=f"probability curve resolution, seconds (default {config.step_seconds:g})",
    )
    group.add_argument(
        "--anchor",
        type=float,
        default=None,
        metavar="F",
        help="where in its window a decision points, 0..1 (default: the model's measured value)",
    )
    group.add_argument(
        "--min-ad",
        "--min-ad-seconds",
        dest="min_ad_seconds",
        type=float,
        default=None,
        metavar="S",
        help=f"shortest ad segment, seconds (hmm; default: half the shortest ad in the model's "
        f"training labels, at most {smoothing.min_ad_seconds:g})",
    )
    group.add_argument(
        "--min-content",
        "--min-content-seconds",
        dest="min_content_seconds",
        type=float,
        default=None,
        metavar="S",
        help=f"shortest content segment, seconds (hmm; default: learned likewise, at most "
        f"{smoothing.min_content_seconds:g})",
    )
    group.add_argument(
        "--no-refine",
        action="store_true",
        help="keep boundaries where the smoother put them (do not move them to nearby pauses)",
    )
    group.add_argument(
        "--max-shift",
        type=float,
        default=None,
        metavar="S",
        help=f"how far refinement may move a boundary (default {config.refine_max_shift:g})",
    )
    group.add_argument(
        "--review-below",
        type=float,
        default=None,
        metavar="P",
        help="label ad segments whose mean probability is below P as 'review' and keep them",
    )


def segmentation_config(args: argparse.Namespace) -> SegmentationConfig:
    """The settings the flags of :func:`add_segmentation_arguments` ask for."""
    overrides = {
        "smoothing": args.smoothing,
        "hop_seconds": args.hop,
        "step_seconds": args.step,
        "scan_stride": args.scan_stride,
        "anchor": args.anchor,
        "min_ad_seconds": args.min_ad_seconds,
        "min_content_seconds": args.min_content_seconds,
        "refine_max_shift": args.max_shift,
        "review_below": args.review_below,
    }
    config = replace(SegmentationConfig(), **{k: v for k, v in overrides.items() if v is not None})
    if args.no_refine:
        config = replace(config, refine=False)
    return config
