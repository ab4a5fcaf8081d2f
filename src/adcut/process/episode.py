"""One episode: detect, write the chosen outputs and the cut audio, skip when up to date."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from adcut.core.units import Seconds
from adcut.detect.config import SegmentationConfig
from adcut.errors import AdcutError, ModelError
from adcut.formats.export import DEFAULT_FORMATS, get_writer

if TYPE_CHECKING:
    from adcut.detect.pipeline import Detection


log = logging.getLogger(__name__)


PROCESSED, SKIPPED, FAILED, DRY_RUN = "processed", "skipped", "failed", "dry-run"


@dataclass(frozen=True)
class ProcessOptions:
    """What ``adcut process`` does with each episode."""

    formats: tuple[str, ...] = DEFAULT_FORMATS
    cut: bool = True
    remove: tuple[str, ...] = ("ad",)
    outdir: Path | None = None
    force: bool = False
    dry_run: bool = False
    device: str = "cpu"
    fade_seconds: Seconds = 0.03
    cut_method: str = (
        "auto"  # "auto": copy the kept audio where the format allows; "reencode": always re-encode
    )
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)


@dataclass
class FileResult:
    path: Path
    status: str
    outputs: list[Path] = field(default_factory=list)
    audio_seconds: Seconds = 0.0
    wall_seconds: Seconds = 0.0
    error: str | None = None
    detection: Detection | None = None  # when processed
    removed_seconds: Seconds = 0.0
    node: str | None = None  # host that processed it (the summary counts episodes per node)


def is_cut_output(path: Path) -> bool:
    """Files adcut wrote itself (``*.adcut.<ext>``) are never taken as episodes."""
    return Path(path).stem.endswith(".adcut")


def planned_outputs(episode: Path, options: ProcessOptions) -> list[Path]:
    from adcut.media.cut import cut_path

    outputs = [get_writer(name).output_path(episode, options.outdir) for name in options.formats]
    if options.cut:
        outputs.append(cut_path(episode, options.outdir))
    return outputs


def is_up_to_date(episode: Path, outputs: list[Path], model_path: Path | None) -> bool:
    """All outputs exist and are newer than both the episode and the model."""
    try:
        newest_input = max(
            [Path(episode).stat().st_mtime] + ([Path(model_path).stat().st_mtime] if model_path else [])
        )
        return all(out.exists() and out.stat().st_mtime >= newest_input for out in outputs)
    except OSError:
        return False


def check_model(checkpoint, options: ProcessOptions) -> None:
    """Errors that belong to the model and the options, found before any episode is decoded."""
    from adcut.features.mfcc import FEATURE_KIND

    fcfg = checkpoint.feature_config
    if fcfg.kind != FEATURE_KIND:
        raise ModelError(
            f"{checkpoint.name}: made with features {fcfg.kind!r}, which this adcut does not compute ({FEATURE_KIND})"
        )
    checkpoint.check_feature_count(fcfg.n_features)
    unknown = [name for name in options.remove if name not in checkpoint.class_names]
    if unknown:
        raise AdcutError(
            f"--remove {','.join(unknown)}: not a class of this model ({', '.join(checkpoint.class_names)})"
        )
    options.segmentation.validate(fcfg.window_seconds, fcfg.frame_seconds)


def process_file(
    episode: Path, checkpoint, options: ProcessOptions, model=None, threads: int | None = None
) -> FileResult:
    """Detect, write outputs, cut. Raises AdcutError on bad input (the caller decides what that means)."""
    from adcut.detect.pipeline import detect
    from adcut.media.cut import cut_episode, cut_path
    from adcut.media.timeline import NothingKept

    episode = Path(episode)
    outputs = planned_outputs(episode, options)
    if not options.force and is_up_to_date(episode, outputs, checkpoint.path):
        return FileResult(episode, SKIPPED, outputs)
    if options.dry_run:
        return FileResult(episode, DRY_RUN, outputs)
    if not episode.is_file():
        from adcut.errors import AudioError

        raise AudioError(
            f"{episode}: file not found" if not episode.exists() else f"{episode}: is not a file"
        )
    started = time.perf_counter()
    detection = detect(
        episode, checkpoint, options.segmentation, device=options.device, model=model, threads=threads
    )
    if options.outdir is not None:
        Path(options.outdir).mkdir(parents=True, exist_ok=True)
    removed = 0.0
    if options.cut:
        # The cut comes first so that the JSON output can say which path wrote it (settings.cut_method).
        try:
            result = cut_episode(
                episode,
                detection.segments,
                cut_path(episode, options.outdir),
                remove=options.remove,
                fade_seconds=options.fade_seconds,
                method=options.cut_method,
            )
            removed = result.removed_seconds
            detection.settings["cut_method"] = result.method
        except NothingKept as error:
            log.warning("%s", error)
            outputs = outputs[:-1]
            removed = detection.duration
            detection.settings["cut_method"] = None
    for name in options.formats:
        writer = get_writer(name)
        writer.write(detection, writer.output_path(episode, options.outdir))
    return FileResult(
        episode,
        PROCESSED,
        outputs,
        detection.duration,
        time.perf_counter() - started,
        detection=detection,
        removed_seconds=removed,
    )


def safe_process_file(
    episode: Path, checkpoint, options: ProcessOptions, model=None, threads: int | None = None
) -> FileResult:
    """``process_file`` that turns any failure into a FAILED result with a one-line reason."""
    try:
        return process_file(episode, checkpoint, options, model, threads)
    except AdcutError as error:
        return FileResult(Path(episode), FAILED, error=str(error))
    except MemoryError:
        return FileResult(Path(episode), FAILED, error=f"{episode}: out of memory")
    except Exception as error:  # noqa: BLE001 - one bad file must not stop a folder
        log.debug("unexpected failure", exc_info=True)
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return FileResult(Path(episode), FAILED, error=f"{episode}: {type(error).__name__}: {first[:200]}")
