"""Processing episodes and folders: detect, write the chosen outputs and the cut audio, skip what is done."""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from adcut.errors import AdcutError, ModelError
from adcut.export import DEFAULT_FORMATS, get_writer
from adcut.segment import SegmentationConfig

log = logging.getLogger(__name__)

Seconds = float

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
    segmentation: SegmentationConfig = field(default_factory=SegmentationConfig)


@dataclass
class FileResult:
    path: Path
    status: str
    outputs: list[Path] = field(default_factory=list)
    audio_seconds: Seconds = 0.0
    wall_seconds: Seconds = 0.0
    error: str | None = None
    detection: object | None = None  # segment.Detection when processed
    removed_seconds: Seconds = 0.0


# --------------------------------------------------------------------------- inputs and outputs


def is_cut_output(path: Path) -> bool:
    """Files adcut wrote itself (``*.adcut.<ext>``) are never taken as episodes."""
    return Path(path).stem.endswith(".adcut")


def collect_episodes(paths) -> list[Path]:
    """Episode files from files and folders (a folder contributes its audio files, not sub-folders)."""
    from adcut.audio import AUDIO_SUFFIXES

    episodes: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(
                p for p in path.iterdir()
                if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES and not p.name.startswith(".") and not is_cut_output(p)
            )
            if not found:
                raise AdcutError(f"{path}: no audio files in this folder ({', '.join(AUDIO_SUFFIXES)})")
            episodes.extend(found)
        else:
            episodes.append(path)  # a missing or non-audio file fails on its own, with its reason
    seen, unique = set(), []
    for episode in episodes:
        key = os.path.abspath(episode)
        if key not in seen:
            seen.add(key)
            unique.append(episode)
    return unique


def planned_outputs(episode: Path, options: ProcessOptions) -> list[Path]:
    from adcut.cut import cut_path

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
    from adcut.features import FEATURE_KIND

    fcfg = checkpoint.feature_config
    if fcfg.kind != FEATURE_KIND:
        raise ModelError(f"{checkpoint.name}: made with features {fcfg.kind!r}, which this adcut does not compute ({FEATURE_KIND})")
    expected = checkpoint.model_config.get("n_features")
    if expected is not None and expected != fcfg.n_features:
        raise ModelError(
            f"{checkpoint.name}: the model reads {expected} features per frame but its feature settings give {fcfg.n_features}"
        )
    unknown = [name for name in options.remove if name not in checkpoint.class_names]
    if unknown:
        raise AdcutError(f"--remove {','.join(unknown)}: not a class of this model ({', '.join(checkpoint.class_names)})")
    options.segmentation.validate(fcfg.window_seconds, fcfg.frame_seconds)


# --------------------------------------------------------------------------- one file


def process_file(episode: Path, checkpoint, options: ProcessOptions, model=None, threads: int | None = None) -> FileResult:
    """Detect, write outputs, cut. Raises AdcutError on bad input (the caller decides what that means)."""
    from adcut.cut import NothingKept, cut_episode, cut_path
    from adcut.segment import detect

    episode = Path(episode)
    outputs = planned_outputs(episode, options)
    if not options.force and is_up_to_date(episode, outputs, checkpoint.path):
        return FileResult(episode, SKIPPED, outputs)
    if options.dry_run:
        return FileResult(episode, DRY_RUN, outputs)
    if not episode.is_file():
        from adcut.errors import AudioError

        raise AudioError(f"{episode}: file not found" if not episode.exists() else f"{episode}: is not a file")
    started = time.perf_counter()
    detection = detect(episode, checkpoint, options.segmentation, device=options.device, model=model, threads=threads)
    if options.outdir is not None:
        Path(options.outdir).mkdir(parents=True, exist_ok=True)
    for name in options.formats:
        writer = get_writer(name)
        writer.write(detection, writer.output_path(episode, options.outdir))
    removed = 0.0
    if options.cut:
        try:
            result = cut_episode(episode, detection.segments, cut_path(episode, options.outdir),
                                 remove=options.remove, fade_seconds=options.fade_seconds)
            removed = result.removed_seconds
        except NothingKept as error:
            log.warning("%s", error)
            outputs = outputs[:-1]
            removed = detection.duration
    return FileResult(episode, PROCESSED, outputs, detection.duration, time.perf_counter() - started,
                      detection=detection, removed_seconds=removed)


def safe_process_file(episode: Path, checkpoint, options: ProcessOptions, model=None, threads: int | None = None) -> FileResult:
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


# --------------------------------------------------------------------------- worker processes

_WORKER: dict = {}


def _init_worker(model_path: str, options: ProcessOptions) -> None:
    """Runs once in each worker process: load the model, one torch thread (the workers share the cores)."""
    from adcut.checkpoint import load_checkpoint
    from adcut.inference import build_predictor, set_torch_threads, uses_torch

    checkpoint = load_checkpoint(Path(model_path))
    model = build_predictor(checkpoint, options.device)
    if uses_torch(model):
        set_torch_threads(1)
    _WORKER.update(checkpoint=checkpoint, model=model, options=options)


def _work(episode: str) -> FileResult:
    result = safe_process_file(Path(episode), _WORKER["checkpoint"], _WORKER["options"], _WORKER["model"], threads=1)
    result.detection = _slim(result.detection)
    return result


def _slim(detection):
    """Drop the probability curve before sending a result between processes (only the table is printed)."""
    if detection is None:
        return None
    import numpy as np

    detection.probabilities = np.zeros((0, len(detection.classes)), np.float32)
    return detection


# --------------------------------------------------------------------------- many files


@dataclass
class Summary:
    results: list[FileResult]
    wall_seconds: Seconds

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def audio_seconds(self) -> Seconds:
        return sum(r.audio_seconds for r in self.results if r.status == PROCESSED)

    @property
    def failed(self) -> list[FileResult]:
        return [r for r in self.results if r.status == FAILED]


def process_many(episodes: list[Path], checkpoint, options: ProcessOptions, *, jobs: int | None = None,
                 progress: bool = True, on_result=None) -> Summary:
    """Process every episode (in ``jobs`` worker processes when there are several); never stops on a failure.

    ``on_result(result, write)`` is called as each file finishes; ``write`` prints without breaking the bar.
    """
    from tqdm import tqdm

    started = time.perf_counter()
    jobs = max(1, jobs or os.cpu_count() or 1)
    results: list[FileResult] = []
    todo = list(episodes)
    # Decide skips and dry runs here: no model run, no worker start for them.
    pending = []
    for episode in todo:
        outputs = planned_outputs(episode, options)
        if not options.force and Path(episode).is_file() and is_up_to_date(episode, outputs, checkpoint.path):
            results.append(FileResult(Path(episode), SKIPPED, outputs))
        elif options.dry_run:
            results.append(FileResult(Path(episode), DRY_RUN, outputs))
        else:
            pending.append(episode)
    bar = tqdm(total=len(pending), unit="file", desc="processing", disable=not progress or len(pending) < 2,
               file=sys.stderr, dynamic_ncols=True)

    def write(text: str) -> None:
        if bar.disable:
            print(text, flush=True)
        else:
            tqdm.write(text, file=sys.stdout)

    for result in results:
        if on_result:
            on_result(result, write)

    def finished(result: FileResult) -> None:
        results.append(result)
        bar.update(1)
        if on_result:
            on_result(result, write)

    try:
        if jobs == 1 or len(pending) < 2:
            from adcut.inference import build_predictor

            model = build_predictor(checkpoint, options.device) if pending else None
            for episode in pending:
                finished(safe_process_file(episode, checkpoint, options, model))
        else:
            _run_pool(pending, checkpoint, options, min(jobs, len(pending)), finished)
    finally:
        bar.close()
    order = {os.path.abspath(e): i for i, e in enumerate(episodes)}
    results.sort(key=lambda r: order.get(os.path.abspath(r.path), len(order)))
    return Summary(results, time.perf_counter() - started)


def _run_pool(episodes, checkpoint, options, workers, finished) -> None:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    # "spawn": a forked child would inherit torch's thread pool in an unusable state.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(str(checkpoint.path), options)) as pool:
        futures = {pool.submit(_work, str(episode)): episode for episode in episodes}
        for future in as_completed(futures):
            episode = futures[future]
            try:
                finished(future.result())
            except BrokenProcessPool:
                finished(FileResult(Path(episode), FAILED, error=f"{episode}: worker process died (out of memory?)"))
            except Exception as error:  # noqa: BLE001 - e.g. the worker could not start
                finished(FileResult(Path(episode), FAILED, error=f"{episode}: {type(error).__name__}: {error}"))
