"""The segmentation flags shared by ``process``, ``evaluate`` and ``label --model``, and the settings they make.

Defaults live in the settings dataclasses only; the help text reads them from there.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import Any

from adcut.detect.config import SegmentationConfig, with_preference
from adcut.detect.refine import PREFERENCES, REFINE_METHODS, RefineConfig
from adcut.detect.smoothing import (
    DEFAULT_MIN_AD_SECONDS,
    DEFAULT_MIN_CONTENT_SECONDS,
    KEEP_CONTENT_COST,
    METHODS,
)
from adcut.errors import AdcutError
from adcut.features.mfcc import FeatureConfig


def add_segmentation_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags that override :class:`SegmentationConfig` (every default: None, meaning the config's)."""
    config, features = SegmentationConfig(), FeatureConfig()
    smoothing, refine = config.smoothing, config.refine or RefineConfig()
    group = parser.add_argument_group("segmentation (how window probabilities become segments)")
    group.add_argument(
        "--smoothing",
        choices=METHODS,
        default=None,
        help=f"hmm: minimum-duration HMM; reference: the reference project's four forgiving rules "
        f"on {smoothing.reference_hop_seconds:g} s blocks; none: most probable class per step "
        f"(default {smoothing.method})",
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
        f"training labels, at most {DEFAULT_MIN_AD_SECONDS:g})",
    )
    group.add_argument(
        "--min-content",
        "--min-content-seconds",
        dest="min_content_seconds",
        type=float,
        default=None,
        metavar="S",
        help=f"shortest content segment, seconds (hmm; default: learned likewise, at most "
        f"{DEFAULT_MIN_CONTENT_SECONDS:g})",
    )
    group.add_argument(
        "--no-refine",
        action="store_true",
        help="keep boundaries where the smoother put them (do not move them to nearby pauses)",
    )
    group.add_argument(
        "--refine",
        choices=REFINE_METHODS,
        default=None,
        help=f"how a boundary is moved onto the audio: pause: the nearby feature jump, then the "
        f"nearest pause; change: where the audio stops sounding like the segment before and starts "
        f"sounding like the one after (no pause needed); change+pause: a pause close to that point, "
        f"else the point (default {refine.method})",
    )
    group.add_argument(
        "--prefer",
        choices=PREFERENCES,
        default=None,
        help=f"which mistake costs more: keep-content: cutting content (a stretch is called an ad only "
        f"where the model's odds for ad exceed {KEEP_CONTENT_COST:g}, and boundaries may move further into "
        f"the ad than out of it); remove-ads: keeping ad audio (the other way round) (default {refine.prefer})",
    )
    group.add_argument(
        "--max-shift",
        type=float,
        default=None,
        metavar="S",
        help=f"how far refinement may move a boundary (default {refine.max_shift_seconds:g})",
    )
    group.add_argument(
        "--review-below",
        type=float,
        default=None,
        metavar="P",
        help="label ad segments whose mean probability is below P as 'review' and keep them",
    )


def add_words_arguments(parser: argparse.ArgumentParser) -> None:
    """``--words``, ``--ad-phrases``, ``--speech-model``: hearing host-read ads through their words."""
    group = parser.add_argument_group("words (sponsor phrases heard by offline speech recognition)")
    group.add_argument(
        "--words",
        choices=("off", "auto", "on"),
        default="auto",
        help="listen for sponsor phrases in the speech the sound model calls content (pocketsphinx, offline, "
        "costly: a cheap scan of the content at ~150x realtime per core, then a close search around what it "
        "hears). auto (default): on when pocketsphinx is installed and the "
        "model carries phrases learned from its labels (dataset build --learn-phrases) or --ad-phrases is given",
    )
    group.add_argument(
        "--words-full",
        action="store_true",
        help="search the whole episode closely instead of scanning its content first (~5x slower; a read ad "
        "whose phrases the scan misses is still found)",
    )
    group.add_argument(
        "--ad-phrases",
        type=Path,
        default=None,
        metavar="FILE",
        help="more sponsor phrases, one a line (optionally TAB weight TAB lead|cue|return)",
    )
    group.add_argument(
        "--speech-model",
        type=Path,
        default=None,
        metavar="DIR",
        help="another pocketsphinx model folder (acoustic model, *.dict, *.lm.bin), e.g. another "
        "language; the built-in English phrases are then not used",
    )


def words_config(args: argparse.Namespace):
    from adcut.detect.words import WordsConfig

    return WordsConfig(
        mode=getattr(args, "words", "off") or "off",
        phrases_file=getattr(args, "ad_phrases", None),
        model_dir=getattr(args, "speech_model", None),
        scan=not getattr(args, "words_full", False),
    )


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def segmentation_config(args: argparse.Namespace) -> SegmentationConfig:
    """The settings the flags of :func:`add_segmentation_arguments` ask for."""
    if args.no_refine and args.refine:
        raise AdcutError("--no-refine contradicts --refine: boundaries are not moved without refinement")
    defaults = SegmentationConfig()
    smoothing = replace(
        defaults.smoothing,
        **_given(
            method=args.smoothing,
            min_ad_seconds=args.min_ad_seconds,
            min_content_seconds=args.min_content_seconds,
        ),
    )
    refine = (
        None
        if args.no_refine
        else replace(RefineConfig(), **_given(max_shift_seconds=args.max_shift, method=args.refine))
    )
    config = replace(
        defaults,
        smoothing=smoothing,
        refine=refine,
        words=words_config(args) if hasattr(args, "words") else None,
        **_given(
            hop_seconds=args.hop,
            step_seconds=args.step,
            scan_stride=args.scan_stride,
            anchor=args.anchor,
            review_below=args.review_below,
        ),
    )
    return with_preference(config, args.prefer) if args.prefer else config
