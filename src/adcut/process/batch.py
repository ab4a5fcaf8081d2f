"""Many episodes: collect the inputs, run them through a backend (the local process pool by default), count what happened."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from adcut.core.units import Seconds
from adcut.errors import AdcutError
from adcut.process.episode import (
    DRY_RUN,
    FAILED,
    PROCESSED,
    SKIPPED,
    FileResult,
    ProcessOptions,
    is_cut_output,
    is_up_to_date,
    planned_outputs,
    safe_process_file,
)

LIST_PREFIX = "@"


def read_episode_list(list_file: Path) -> list[Path]:
    """Paths listed one a line in ``list_file`` (blank lines and ``#`` comments ignored), relative ones taken
    from the current folder as for any other argument."""
    from adcut.core.files import read_text_file

    text = read_text_file(list_file, what="episode list", error=AdcutError)
    paths = [
        Path(line.strip()) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    if not paths:
        raise AdcutError(f"{list_file}: the episode list names no files")
    return paths


def collect_episodes(paths: Iterable) -> list[Path]:
    """Episode files from files, folders (their audio files, not sub-folders) and ``@list.txt`` files of paths."""
    from adcut.media.decode import AUDIO_SUFFIXES

    expanded: list[Path] = []
    for item in paths:
        text = str(item)
        if text.startswith(LIST_PREFIX) and len(text) > 1:
            expanded.extend(read_episode_list(Path(text[1:])))
        else:
            expanded.append(Path(item))
    episodes: list[Path] = []
    for path in expanded:
        if path.is_dir():
            found = sorted(
                p
                for p in path.iterdir()
                if p.is_file()
                and p.suffix.lower() in AUDIO_SUFFIXES
                and not p.name.startswith(".")
                and not is_cut_output(p)
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


_WORKER: dict = {}


def _init_worker(model_path: str, options: ProcessOptions) -> None:
    """Runs once in each worker process: load the model, one torch thread (the workers share the cores)."""
    from adcut.models.checkpoint import load_checkpoint
    from adcut.models.inference import build_predictor, set_torch_threads, uses_torch

    checkpoint = load_checkpoint(Path(model_path))
    model = build_predictor(checkpoint, options.device)
    if uses_torch(model):
        set_torch_threads(1)
    _WORKER.update(checkpoint=checkpoint, model=model, options=options)


def _work(episode: str) -> FileResult:
    return run_episode(Path(episode), _WORKER["checkpoint"], _WORKER["options"], _WORKER["model"])


def run_episode(episode: Path, checkpoint, options: ProcessOptions, model) -> FileResult:
    """What every backend's worker does with one episode: process it (one thread: the workers share the cores),
    never raise, and return a result small enough to send back."""
    result = safe_process_file(episode, checkpoint, options, model, threads=1)
    result.detection = _slim(result.detection)
    result.node = NODE
    return result


NODE = socket.gethostname()


def _slim(detection):
    """Drop the probability curve before sending a result between processes (only the table is printed)."""
    if detection is None:
        return None
    import numpy as np

    detection.probabilities = np.zeros((0, len(detection.classes)), np.float32)
    return detection


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

    def per_node(self) -> dict[str, int]:
        """Episodes processed on each host, most first."""
        return dict(Counter(r.node or "?" for r in self.results if r.status == PROCESSED).most_common())


Finished = Callable[[FileResult], None]


class Backend(Protocol):
    """How a batch's episodes are mapped onto workers: the local process pool or a Ray cluster.

    ``run`` calls ``finished`` once for each episode, in any order, from the calling thread, with a result
    made by ``run_episode`` in a worker (skips and dry runs are decided before, in ``process_many``).
    """

    name: str

    def run(self, episodes: list[Path], checkpoint, options: ProcessOptions, finished: Finished) -> None: ...


class LocalBackend:
    """Worker processes on this machine, each loading the model once (one process: no pool at all)."""

    name = "local"

    def __init__(self, jobs: int | None = None) -> None:
        self.jobs = max(1, jobs or os.cpu_count() or 1)

    def run(self, episodes: list[Path], checkpoint, options: ProcessOptions, finished: Finished) -> None:
        if self.jobs == 1 or len(episodes) < 2:
            from adcut.models.inference import build_predictor

            model = build_predictor(checkpoint, options.device) if episodes else None
            for episode in episodes:
                result = safe_process_file(episode, checkpoint, options, model)
                result.node = NODE
                finished(result)
        else:
            _run_pool(episodes, checkpoint, options, min(self.jobs, len(episodes)), finished)


def process_many(
    episodes: list[Path],
    checkpoint,
    options: ProcessOptions,
    *,
    jobs: int | None = None,
    progress: bool = True,
    on_result=None,
    backend: Backend | None = None,
) -> Summary:
    """Process every episode through ``backend`` (default: ``jobs`` local worker processes); never stops on a failure.

    ``on_result(result, write)`` is called as each file finishes; ``write`` prints without breaking the bar.
    """
    from tqdm import tqdm

    started = time.perf_counter()
    backend = backend or LocalBackend(jobs)
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
    bar = tqdm(
        total=len(pending),
        unit="file",
        desc="processing",
        disable=not progress or len(pending) < 2,
        file=sys.stderr,
        dynamic_ncols=True,
    )

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
        if pending:
            backend.run(pending, checkpoint, options, finished)
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
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(str(checkpoint.path), options)
    ) as pool:
        futures = {pool.submit(_work, str(episode)): episode for episode in episodes}
        for future in as_completed(futures):
            episode = futures[future]
            try:
                finished(future.result())
            except BrokenProcessPool:
                finished(
                    FileResult(
                        Path(episode), FAILED, error=f"{episode}: worker process died (out of memory?)"
                    )
                )
            except Exception as error:  # noqa: BLE001 - e.g. the worker could not start
                finished(
                    FileResult(Path(episode), FAILED, error=f"{episode}: {type(error).__name__}: {error}")
                )
