"""The Ray backend: a batch's episodes mapped onto Ray actors, one per worker CPU (or GPU), on one machine or a cluster."""

from __future__ import annotations

import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adcut.errors import AdcutError
from adcut.process.batch import Finished, run_episode
from adcut.process.episode import FAILED, FileResult, ProcessOptions, planned_outputs

if TYPE_CHECKING:
    from adcut.models.checkpoint import Checkpoint

log = logging.getLogger(__name__)

INSTALL_HINT = "--backend ray needs Ray: pip install 'adcut[ray]'"

# A worker process that dies (killed, out of memory, its node lost) is started again by Ray, on another node
# when its own is gone, and loads the model again from the object store; a few times per actor, so that a
# cluster that keeps losing workers ends the run with errors instead of restarting forever.
MAX_RESTARTS = 3
# Ray itself never re-sends an episode (max_task_retries=0): the driver puts the episode of a dead worker back
# in the queue, where the next free actor takes it, and counts the attempts, so that a file that kills every
# worker that reads it (a decoder crash, memory blow-up) is reported once it has killed MAX_ATTEMPTS of them,
# rather than taking the whole pool down in turn. Errors that episode processing raises are not retried at all:
# ``run_episode`` turns them into a FAILED result, which is final.
MAX_TASK_RETRIES = 0
MAX_ATTEMPTS = 2
# How long to wait for a restarted worker when no other is left (it may wait for a node with a free CPU).
RESTART_WAIT_SECONDS = 300.0
# How long to try reaching a cluster's address before saying nothing answers there.
CONNECT_TIMEOUT_SECONDS = 10.0
# How long stopping waits for Ray to report the actors' CPUs free again.
RELEASE_WAIT_SECONDS = 10.0
# The local instance's object store holds the checkpoint's bytes and the results in flight, nothing else.
LOCAL_OBJECT_STORE_BYTES = 200 * 1024 * 1024


def require_ray():
    """The ``ray`` module, or one AdcutError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise AdcutError(INSTALL_HINT) from None
    return ray


class EpisodeWorker:
    """One Ray actor: loads the model once from the checkpoint's bytes, then processes the episodes it is sent.

    Each call carries the reference to those bytes (an id, not the bytes), so that a restarted worker loads the
    model again on its first call; the constructor takes no object-store arguments for Ray to pin.
    """

    def __init__(self, model_path: str, options: ProcessOptions) -> None:
        self.model_path = Path(model_path)
        self.options = options
        self.checkpoint: Checkpoint | None = None
        self.model: Any = None  # what build_predictor made

    def load(self, checkpoint_ref: list) -> bool:
        if self.model is None:
            import ray

            from adcut.models.checkpoint import load_checkpoint_bytes
            from adcut.models.inference import build_predictor, set_torch_threads, uses_torch

            self.checkpoint = load_checkpoint_bytes(ray.get(checkpoint_ref[0]), self.model_path)
            self.model = build_predictor(self.checkpoint, self.options.device)
            if uses_torch(self.model):
                set_torch_threads(1)
        return True

    def process(self, checkpoint_ref: list, episode: str) -> FileResult:
        self.load(checkpoint_ref)
        return run_episode(Path(episode), self.checkpoint, self.options, self.model)


@dataclass
class _Item:
    episode: Path  # as the user gave it: results are reported under this name
    absolute: str  # what a worker opens: the same file from any working folder (paths must be shared storage)
    attempts: int = 0


class RayBackend:
    """Episodes as Ray actor tasks carrying paths; outputs written by the workers where the local backend writes them.

    ``address`` None starts a Ray instance on this machine (or uses the one this process already started);
    ``auto``, ``host:port`` or ``ray://host:port`` joins a running cluster. ``workers`` caps the actors
    (default: one per free CPU, or per free GPU when the model runs on CUDA). ``device`` (auto, cpu, cuda)
    is decided by the cluster's resources when the run starts; None keeps the options' device.
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        workers: int | None = None,
        device: str | None = None,
        object_store_memory: int = LOCAL_OBJECT_STORE_BYTES,
    ) -> None:
        if workers is not None and workers < 1:
            raise AdcutError(f"--jobs must be at least 1, not {workers}")
        self.address = address
        self.workers = workers
        self.device = device
        self.object_store_memory = object_store_memory
        self.actors: list = []  # the running actors, in the order they take their first episodes
        self.attempts: Counter[Path] = (
            Counter()
        )  # episodes sent to a worker, by episode: more than 1 after a death
        self.startup_seconds = 0.0  # starting or joining Ray and every actor loading the model
        self._started_here = False
        self._model: list = []  # [reference to the checkpoint's bytes in the object store] while running
        self._held: tuple[str, int] = ("CPU", 0)  # the resource the actors hold, and how many

    # ----------------------------------------------------------------------- connection

    def connect(self) -> None:
        """Start or join Ray (once); every failure is one AdcutError."""
        ray = require_ray()
        if ray.is_initialized():
            return
        # Nothing may phone home: Ray's usage statistics stay off unless the user turned them on.
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        kwargs: dict = dict(logging_level=logging.ERROR, log_to_driver=False)
        if self.address is None:
            # "local": a new instance, never one that `ray start` left registered in /tmp/ray.
            kwargs.update(
                address="local",
                num_cpus=self.workers or os.cpu_count() or 1,
                include_dashboard=False,
                object_store_memory=self.object_store_memory,
            )
        else:
            _check_listening(self.address)
            kwargs["address"] = self.address
            # A head started with `ray start` uses token authentication when ~/.ray/auth_token exists; Ray turns
            # it on in the driver only for address "auto", so do the same for an explicit address.
            if not os.environ.get("RAY_AUTH_MODE") and (Path.home() / ".ray" / "auth_token").is_file():
                os.environ["RAY_AUTH_MODE"] = "token"
        try:
            ray.init(**kwargs)
        except Exception as error:  # noqa: BLE001 - ConnectionError, ValueError, RuntimeError from Ray
            first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            raise AdcutError(f"cannot start or join {where}: {first}") from None
        self._started_here = self.address is None

    def close(self) -> None:
        """Stop the actors; stop Ray too when this backend started it."""
        ray = require_ray()
        self._stop_actors(ray)
        if self._started_here and ray.is_initialized():
            ray.shutdown()
            self._started_here = False

    def _stop_actors(self, ray) -> None:
        """Kill this run's actors and wait (a few seconds at most) until Ray has their CPUs free again, so that
        the next run in this process can have them."""
        if not self.actors:
            return
        resource, held = self._held
        before = ray.available_resources().get(resource, 0)
        for actor in self.actors:
            try:
                ray.kill(actor, no_restart=True)
            except Exception:  # noqa: BLE001 - already gone
                pass
        self.actors, self._model = [], []
        deadline = time.monotonic() + RELEASE_WAIT_SECONDS
        while ray.available_resources().get(resource, 0) < before + held and time.monotonic() < deadline:
            time.sleep(0.05)

    def device_for(self, requested: str) -> str:
        """``auto``/``cpu``/``cuda`` decided by the cluster's resources, not by the machine that submits."""
        ray = require_ray()
        self.connect()
        gpus = ray.cluster_resources().get("GPU", 0)
        if requested == "cuda" and not gpus:
            raise AdcutError("--device cuda: the Ray cluster has no GPU (use --device cpu or auto)")
        return "cuda" if requested in ("auto", "cuda") and gpus else "cpu"

    def map_tasks(self, function: Callable[[Any], Any], items: Iterable[Any]) -> Iterator[Any]:
        """``function(item)`` for every item as a Ray task of one CPU, yielding the results as they finish.

        A task whose worker dies is run again (``MAX_TASK_RETRIES``); one that raises is not: its error ends the
        run as one AdcutError, and the tasks still running are cancelled (also on Ctrl+C).
        """
        ray = require_ray()
        self.connect()
        remote = ray.remote(num_cpus=1, max_retries=MAX_TASK_RETRIES, retry_exceptions=False)(_call)
        pending = {remote.remote(function, item): item for item in items}
        try:
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                item = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayTaskError as error:
                    cause = getattr(error, "cause", None)
                    if isinstance(cause, AdcutError):
                        raise AdcutError(str(cause)) from None
                    raise AdcutError(f"task {item}: {_one_line(cause or error)}") from None
                yield result
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    # ----------------------------------------------------------------------- running

    def run(self, episodes: list[Path], checkpoint, options: ProcessOptions, finished: Finished) -> None:
        ray = require_ray()
        started = time.perf_counter()
        self.connect()
        if checkpoint.path is None:
            raise AdcutError("the Ray backend needs a model saved in a file")
        try:
            checkpoint_bytes = Path(checkpoint.path).read_bytes()
        except OSError as error:
            raise AdcutError(
                f"{checkpoint.path}: cannot read model file ({error.strerror or error})"
            ) from None
        # Workers run in other folders, maybe on other machines: they get absolute paths.
        outdir = Path(os.path.abspath(options.outdir)) if options.outdir is not None else None
        options = replace(
            options, outdir=outdir, device=self.device_for(self.device) if self.device else options.device
        )
        gpu = options.device == "cuda"
        resource = "GPU" if gpu else "CPU"
        free = int(ray.available_resources().get(resource, 0))
        if free < 1:
            raise AdcutError(f"the Ray cluster has no free {resource} for adcut's workers")
        count = min(self.workers or free, free, len(episodes))
        # Put once: every actor, and every restart of one, reads it from the object store. Passed inside a list,
        # Ray hands the actor the reference, not the bytes, with every call.
        self._model = [ray.put(checkpoint_bytes)]
        actor_class = ray.remote(EpisodeWorker).options(
            num_cpus=0 if gpu else 1,
            num_gpus=1 if gpu else 0,
            max_restarts=MAX_RESTARTS,
            max_task_retries=MAX_TASK_RETRIES,
        )
        self._held = (resource, count)
        self.actors = [actor_class.remote(str(checkpoint.path), options) for _ in range(count)]
        queue = deque(_Item(Path(e), os.path.abspath(e)) for e in episodes)
        try:
            try:
                ray.get([actor.load.remote(self._model) for actor in self.actors])
            except _dead_worker_errors(ray) as error:  # e.g. adcut is not installed on a node
                raise AdcutError(f"adcut's Ray workers cannot start: {_one_line(error)}") from None
            self.startup_seconds = time.perf_counter() - started
            self._drive(ray, queue, options, finished)
        finally:
            # Also on Ctrl+C: the workers are killed mid-episode; their outputs were never renamed into place.
            self._stop_actors(ray)

    def _drive(self, ray, queue: deque, options: ProcessOptions, finished: Finished) -> None:
        """Keep every live actor busy with one episode until the queue is empty; requeue a dead worker's episode."""
        dead_errors = _dead_worker_errors(ray)
        idle = deque(self.actors)
        running: dict = {}  # ObjectRef -> (actor, item)
        restarting: dict = {}  # ObjectRef of load() -> actor, for an actor that died and may come back
        last_death = ""

        def dispatch() -> None:
            while queue and idle:
                actor, item = idle.popleft(), queue.popleft()
                self.attempts[item.episode] += 1
                running[actor.process.remote(self._model, item.absolute)] = (actor, item)

        dispatch()
        while running or queue:
            if not running and not idle:
                if not restarting:
                    for item in queue:
                        finished(
                            FileResult(
                                item.episode,
                                FAILED,
                                error=f"{item.episode}: no Ray worker left ({last_death})",
                            )
                        )
                    queue.clear()
                    break
                timeout = RESTART_WAIT_SECONDS
            else:
                timeout = None
            ready, _ = ray.wait(list(running) + list(restarting), num_returns=1, timeout=timeout)
            if not ready:
                for item in queue:
                    finished(
                        FileResult(
                            item.episode,
                            FAILED,
                            error=f"{item.episode}: no Ray worker came back within {RESTART_WAIT_SECONDS:.0f} s ({last_death})",
                        )
                    )
                queue.clear()
                break
            ref = ready[0]
            if ref in restarting:
                actor = restarting.pop(ref)
                try:
                    ray.get(ref)
                    idle.append(actor)
                except dead_errors:
                    pass  # gone for good (restarts used up): the others carry on
                dispatch()
                continue
            actor, item = running.pop(ref)
            try:
                result = ray.get(ref)
            except dead_errors as error:
                item.attempts += 1
                last_death = _one_line(error)
                log.warning(
                    "%s: its worker died (%s); %s",
                    item.episode,
                    last_death,
                    "trying again" if item.attempts < MAX_ATTEMPTS else "giving up",
                )
                _remove_temporaries(Path(item.absolute), options)
                if item.attempts < MAX_ATTEMPTS:
                    queue.appendleft(item)
                else:
                    finished(
                        FileResult(
                            item.episode,
                            FAILED,
                            error=f"{item.episode}: its worker died {item.attempts} times while processing it ({last_death})",
                        )
                    )
                restarting[actor.load.remote(self._model)] = actor
                dispatch()
                continue
            except ray.exceptions.RayTaskError as error:  # raised outside safe_process_file: final, no retry
                result = FileResult(item.episode, FAILED, error=f"{item.episode}: {_one_line(error)}")
            result.path = item.episode
            idle.append(actor)
            dispatch()  # before reporting: every actor has its next episode while the driver prints
            finished(result)


def _call(function: Callable[[Any], Any], item: Any) -> Any:
    return function(item)


def _check_listening(address: str) -> None:
    """A ``host:port`` where nothing listens is one error now (Ray itself keeps retrying for minutes)."""
    import socket

    host, sep, port = address.rpartition(":")
    if address.startswith("ray://") or not sep or not port.isdigit():
        return  # "auto" and client addresses: Ray finds and reports those itself
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_SECONDS):
            pass
    except OSError as error:
        raise AdcutError(
            f"cannot start or join the Ray cluster at {address}: nothing answers there "
            f"({error.strerror or error}); is `ray start --head` running?"
        ) from None


def _dead_worker_errors(ray) -> tuple[type[BaseException], ...]:
    exceptions = ray.exceptions
    names = (
        "RayActorError",
        "ActorUnavailableError",
        "WorkerCrashedError",
        "NodeDiedError",
        "ObjectLostError",
    )
    return tuple(getattr(exceptions, name) for name in names if hasattr(exceptions, name))


def _one_line(error: BaseException) -> str:
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:200]


def _remove_temporaries(episode: Path, options: ProcessOptions) -> None:
    """A killed worker can leave the temporary file of an output it was writing: remove it (the outputs
    themselves are only ever renamed into place whole)."""
    for output in planned_outputs(episode, options):
        for pattern in (f".{output.name}.*.tmp", f".{output.name}.*.partial"):
            for temporary in output.parent.glob(pattern):
                temporary.unlink(missing_ok=True)
