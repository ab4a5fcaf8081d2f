"""The background work: leased jobs run in worker processes (download, detect, cut), results recorded.

Each worker thread of the server leases one job at a time from the SQLite queue and hands the
episode to a process pool, so decoding and the model never hold up the HTTP server; it renews the
lease while the process works. A failure of one episode (a 404, not audio, a crash of its process)
is recorded as that episode's reason and the thread goes on with the next job.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import socket
import threading
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from adcut.core.files import atomic_write_text
from adcut.errors import AdcutError, AudioError, OutputError
from adcut.serve.paths import DataDir
from adcut.serve.store import DOWNLOADING, LEASE_SECONDS, MAX_ATTEMPTS, PROCESSING, Job, Store

if TYPE_CHECKING:
    from adcut.detect.pipeline import Segment

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {
    ".mp3": "audio/mpeg",
    ".m4a": "audio/mp4",
    ".mp4": "audio/mp4",
    ".aac": "audio/aac",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".flac": "audio/flac",
    ".wav": "audio/wav",
}
SUFFIX_BY_TYPE = {
    "audio/mpeg": ".mp3",
    "audio/mp3": ".mp3",
    "audio/mp4": ".m4a",
    "audio/x-m4a": ".m4a",
    "audio/aac": ".m4a",
    "audio/ogg": ".ogg",
    "audio/opus": ".ogg",
    "audio/flac": ".flac",
    "audio/wav": ".wav",
    "audio/x-wav": ".wav",
}


def audio_suffix(url: str, content_type: str | None) -> str:
    suffix = Path(urlsplit(url).path).suffix.lower()
    if suffix in AUDIO_SUFFIXES:
        return suffix
    return SUFFIX_BY_TYPE.get((content_type or "").split(";")[0].strip().lower(), ".mp3")


MIN_CHAPTER_SECONDS = 1.0


def chapters_of_cut(segments, remove: tuple[str, ...], duration: float, upstream: dict | None = None) -> dict:
    """Podcasting 2.0 chapters of the ad-free audio.

    The episode's own chapters (``upstream``, its JSON chapters of the original audio) are moved to
    the cut's times, every field kept; a chapter that lay inside removed audio is dropped. Without
    them: one chapter per kept stretch.
    """
    from adcut.media.timeline import kept_spans, retime

    spans = kept_spans(segments, remove, duration)
    kept_total = sum(end - start for start, end in spans)
    upstream = upstream or {}
    original = [
        c
        for c in upstream.get("chapters", [])
        if isinstance(c, dict) and isinstance(c.get("startTime"), (int, float))
    ]
    if original:
        original.sort(key=lambda c: c["startTime"])
        chapters = []
        for number, chapter in enumerate(original):
            end = chapter.get("endTime")
            if not isinstance(end, (int, float)):
                end = original[number + 1]["startTime"] if number + 1 < len(original) else duration
            new_start, new_end = retime(float(chapter["startTime"]), spans), retime(float(end), spans)
            if new_end - new_start < MIN_CHAPTER_SECONDS:
                continue  # all (or all but a sliver) of it was cut
            moved = dict(chapter, startTime=round(new_start, 3))
            if "endTime" in chapter:
                moved["endTime"] = round(min(new_end, kept_total), 3)
            chapters.append(moved)
        if chapters:
            return {
                **{k: v for k, v in upstream.items() if k != "chapters"},
                "version": upstream.get("version", "1.2.0"),
                "chapters": chapters,
            }
    chapters, at = [], 0.0
    for number, (start, end) in enumerate(spans, 1):
        chapters.append({"startTime": round(at, 3), "title": f"Part {number}"})
        at += end - start
    return {"version": "1.2.0", "chapters": chapters}


def upstream_chapters(url: str | None) -> dict | None:
    """The episode's JSON chapters from upstream, or None (missing, unreachable, not chapters)."""
    from adcut.serve.fetch import fetch_feed

    if not url:
        return None
    try:
        data = json.loads(fetch_feed(url, max_bytes=2 * 1024 * 1024).body or b"")
    except (AdcutError, ValueError) as error:
        log.info("chapters %s not used: %s", url, error)
        return None
    return data if isinstance(data, dict) and isinstance(data.get("chapters"), list) else None


def transcripts_of_cut(
    transcripts: tuple[tuple[str, str], ...], spans: list[tuple[float, float]]
) -> dict[str, str]:
    """The episode's upstream transcripts with times, each moved to the cut's timeline; by format.

    One that cannot be fetched or read is left out (logged): the feed then has no transcript of that format.
    """
    from adcut.serve.fetch import fetch_feed
    from adcut.serve.transcripts import MAX_BYTES, TranscriptError, retime

    moved = {}
    for url, fmt in transcripts:
        try:
            moved[fmt] = retime(fmt, fetch_feed(url, max_bytes=MAX_BYTES).body or b"", spans)
        except (AdcutError, TranscriptError) as error:
            log.info("transcript %s not used: %s", url, error)
    return moved


def served_files(data: DataDir, audio_name: str) -> list[Path]:
    """An ad-free file and what is served beside it: its chapters and re-timed transcripts."""
    from adcut.serve.transcripts import FORMATS, file_name

    return [
        data.audio / audio_name,
        data.audio / f"{audio_name}.chapters.json",
        *(data.audio / file_name(audio_name, fmt) for fmt in FORMATS),
    ]


def episode_folder(data: DataDir, episode_id: int) -> Path:
    """Where an episode's original audio, its detection (``episode.adcut.json``) and reviewed labels (``episode.txt``) stay."""
    return data.downloads / str(int(episode_id))


def original_audio(data: DataDir, episode_id: int) -> Path | None:
    folder = episode_folder(data, episode_id)
    found = (
        [p for p in folder.glob("episode.*") if p.suffix.lower() in AUDIO_SUFFIXES] if folder.is_dir() else []
    )
    return found[0] if found else None


def process_episode(data_root: str, episode_id: int, model: str, owner: str) -> dict:
    """In a worker process: download the enclosure, detect (or read the reviewed labels), cut.

    Returns the result for the parent to record; raises AdcutError with the reason when the episode
    cannot be processed. The original stays in the episode's folder (for review in the labeller and
    re-cuts); a download that is not usable audio is removed.
    """
    from adcut.media.cut import cut_path
    from adcut.media.decode import probe
    from adcut.media.timeline import NothingKept
    from adcut.serve.fetch import download

    data = DataDir(data_root)
    store = Store(data.db)
    episode = store.episode(episode_id)
    if episode is None:
        raise AdcutError("the episode was removed")
    feed = store.feed_by_id(episode.feed_id)
    folder = episode_folder(data, episode_id)
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / f"episode{audio_suffix(episode.upstream_url, episode.upstream_type)}"
    reviewed = folder / "episode.txt"
    if not reviewed.exists() and not model:
        raise AdcutError(f"feed {feed.name} has no model (adcut feed set-model {feed.name} M)")
    store.set_state(episode_id, DOWNLOADING)
    if not source.exists():
        download(episode.upstream_url, source)
    store.set_state(episode_id, PROCESSING)
    try:
        if reviewed.exists():
            segments, remove, total, removed = _cut_from_labels(source, reviewed, folder)
        else:
            segments, remove, total, removed = _detect_and_cut(source, Path(model), folder)
    except NothingKept:
        raise AdcutError("the whole episode was detected as ads; nothing to serve (review it)") from None
    except (AudioError, OutputError):
        source.unlink(missing_ok=True)  # not audio, or a full disk: no use to anyone, and it takes space
        raise
    cut = cut_path(source, folder)
    revision = episode.revision + 1
    name = f"{feed.id}-{episode_id}-r{revision}-{uuid.uuid4().hex[:8]}{source.suffix}"
    final = data.audio / name
    duration = probe(cut).duration or (total - removed)
    chapters = chapters_of_cut(segments, remove, total, upstream_chapters(episode.chapters_url))
    atomic_write_text(data.audio / f"{name}.chapters.json", json.dumps(chapters, indent=1))
    from adcut.media.timeline import kept_spans
    from adcut.serve.transcripts import file_name

    for fmt, text in transcripts_of_cut(episode.transcripts, kept_spans(segments, remove, total)).items():
        atomic_write_text(data.audio / file_name(name, fmt), text)
    os.replace(cut, final)  # same filesystem: the final name appears whole
    return {
        "audio_name": name,
        "audio_size": final.stat().st_size,
        "audio_type": AUDIO_SUFFIXES[source.suffix],
        "duration": duration,
        "removed": removed,
        "revision": revision,
    }


CutOutcome = tuple[
    "list[Segment]", tuple[str, ...], float, float
]  # segments, labels removed, duration, removed


def _detect_and_cut(source: Path, model: Path, folder: Path) -> CutOutcome:
    from adcut.media.cut import cut_path
    from adcut.media.timeline import NothingKept
    from adcut.models.checkpoint import load_checkpoint
    from adcut.process.episode import ProcessOptions, process_file

    options = ProcessOptions(formats=("json",), outdir=folder, force=True)
    result = process_file(source, load_checkpoint(model), options, threads=1)
    if result.detection is None:
        raise AdcutError(result.error or f"{source}: not processed ({result.status})")
    if cut_path(source, folder) not in result.outputs:  # not written: every segment is an ad
        raise NothingKept(f"{source}: every segment is ad")
    return (
        list(result.detection.segments),
        tuple(options.remove),
        result.audio_seconds,
        result.removed_seconds,
    )


def _cut_from_labels(source: Path, labels: Path, folder: Path) -> CutOutcome:
    from adcut.detect.pipeline import Detection
    from adcut.process.cut_labels import CutOptions, cut_from_labels

    run = cut_from_labels(source, labels, CutOptions(outdir=folder, force=True))
    detection = run.detection
    if not isinstance(detection, Detection) or run.cut is None:
        raise AdcutError(f"{labels}: the reviewed labels were not cut ({run.status})")
    remove = tuple(detection.settings.get("remove") or ("ad",))
    return list(detection.segments), remove, detection.duration, run.cut.removed_seconds


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__


def owner_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def reclaim_dead_owners(store: Store) -> int:
    """Jobs leased by a process of this machine that no longer runs (killed): queued again now."""
    host = socket.gethostname()
    dead = []
    for row in store.query("SELECT DISTINCT owner FROM jobs WHERE state = 'leased' AND owner IS NOT NULL"):
        owner_host, _, rest = row["owner"].partition(":")
        pid = rest.partition(":")[0]
        if owner_host != host or not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            dead.append(row["owner"])
        except PermissionError:
            pass
    with store.transaction() as db:
        for owner in dead:
            db.execute("UPDATE jobs SET lease_until = 0 WHERE owner = ? AND state = 'leased'", (owner,))
    return len(dead)


class Workers:
    """``count`` threads, each leasing jobs and running them in a shared process pool."""

    def __init__(self, data: DataDir, count: int = 1, poll_seconds: float = 1.0):
        self.data = data
        self.count = max(1, count)
        self.poll_seconds = poll_seconds
        self.owner = owner_id()
        self.stopping = threading.Event()
        self.wake = threading.Event()
        self._pool: ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def _executor(self) -> ProcessPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                # spawn: the server has threads, and a forked child would inherit their locks.
                self._pool = ProcessPoolExecutor(self.count, mp_context=multiprocessing.get_context("spawn"))
            return self._pool

    def _reset_pool(self, broken: ProcessPoolExecutor) -> None:
        with self._pool_lock:
            if self._pool is broken:
                self._pool = None
        broken.shutdown(wait=False, cancel_futures=True)

    def start(self) -> None:
        store = Store(self.data.db)
        reclaim_dead_owners(store)
        store.close()
        for number in range(self.count):
            thread = threading.Thread(target=self._loop, name=f"adcut-worker-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _loop(self) -> None:
        store = Store(self.data.db)
        while not self.stopping.is_set():
            try:
                job = store.lease(self.owner)
            except AdcutError as error:
                log.warning("%s", error)
                job = None
            if job is None:
                self.wake.wait(self.poll_seconds)
                self.wake.clear()
                continue
            try:
                self._run(store, job)
            except Exception as error:  # noqa: BLE001 - e.g. the database on a full disk: the thread goes on
                log.warning("episode %s: %s", job.episode_id, _first_line(error))
                self.stopping.wait(self.poll_seconds)
        store.close()

    def _run(self, store: Store, job: Job) -> None:
        episode = store.episode(job.episode_id)
        if episode is None:
            return
        feed = store.feed_by_id(episode.feed_id)
        pool = self._executor()
        try:
            future = pool.submit(
                process_episode, str(self.data.root), job.episode_id, feed.model or "", self.owner
            )
        except (BrokenProcessPool, RuntimeError):
            self._reset_pool(pool)
            return  # the lease runs out and the job is taken again
        while True:
            try:
                result = future.result(timeout=min(LEASE_SECONDS / 3, 5.0))
                break
            except FutureTimeout:
                if self.stopping.is_set():
                    return  # stop() gives the lease back
                store.renew(job, self.owner)
            except BrokenProcessPool:
                # A worker process died (killed, out of memory, a crash in a codec). Every episode that
                # pool was working on sees this, so each is queued again; the one that keeps killing its
                # process fails after MAX_ATTEMPTS tries, the others finish.
                self._reset_pool(pool)
                if self.stopping.is_set():
                    return
                if job.attempts >= MAX_ATTEMPTS:
                    store.fail_episode(
                        job.episode_id,
                        f"the worker process died while processing this episode ({job.attempts} times)",
                    )
                else:
                    store.requeue(job, self.owner)
                return
            except AdcutError as error:
                store.fail_episode(job.episode_id, _first_line(error))
                return
            except Exception as error:  # noqa: BLE001 - one broken episode must not stop the others
                log.debug("episode %s failed", job.episode_id, exc_info=error)
                store.fail_episode(job.episode_id, f"{type(error).__name__}: {_first_line(error)}")
                return
        old = episode.audio_name
        store.finish_episode(job.episode_id, **result)
        if old and old != result["audio_name"]:
            for path in served_files(self.data, old):
                path.unlink(missing_ok=True)
        log.info("episode %s processed: %s", job.episode_id, result["audio_name"])

    def stop(self, timeout: float = 5.0) -> None:
        """Stop taking jobs, end the worker processes, give their jobs back to the queue."""
        self.stopping.set()
        self.wake.set()
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            processes = list(getattr(pool, "_processes", {}).values())
            pool.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()  # their files are written through temporary names: nothing half-written stays
            deadline = time.monotonic() + timeout
            for process in processes:
                process.join(max(0.0, deadline - time.monotonic()))
        for thread in self._threads:
            thread.join(timeout)
        store = Store(self.data.db)
        store.release(self.owner)
        store.close()
