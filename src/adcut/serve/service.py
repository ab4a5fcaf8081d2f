"""The lifecycle of ``adcut serve``: the HTTP server, the worker threads and the periodic refresh, started and
stopped together."""

from __future__ import annotations

import logging
import threading
import time
from http.server import ThreadingHTTPServer

from adcut.errors import AdcutError
from adcut.serve.handler import FeedCache, Handler, Options, Reviews
from adcut.serve.paths import DataDir
from adcut.serve.refresh import DEFAULT_EPISODES, prune, refresh_feed
from adcut.serve.store import Store
from adcut.serve.urls import DEFAULT_HOST, DEFAULT_PORT, status_url

log = logging.getLogger(__name__)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # apps refreshing at once: the default 5 drops connections (1 s SYN retries)


class Service:
    """The HTTP server, the worker threads and the periodic refresh, started and stopped together."""

    def __init__(
        self,
        data: DataDir,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        workers: int = 1,
        refresh_minutes: float = 30.0,
        episodes: int = DEFAULT_EPISODES,
        public_url: str | None = None,
        options: Options | None = None,
        keep: int = 0,
    ):
        from adcut.serve.worker import Workers

        self.data = data.create()
        self.store = Store(data.db)
        self.token = self.store.token()
        self.episodes = episodes
        self.keep = keep
        self.refresh_seconds = max(1.0, refresh_minutes * 60)
        self._cleanup_temporary_files()
        self.reviews = Reviews(self.data)
        self.handler = self._handler_class(public_url, options or Options())
        try:
            self.httpd = _Server((host, port), self.handler)
        except OSError as error:
            if error.errno == 98:
                raise AdcutError(
                    f"port {port} is in use; choose another with --port (0: any free port)"
                ) from None
            raise AdcutError(f"cannot listen on {host}:{port} ({error.strerror or error})") from None
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
        self.base_url = (public_url or f"http://{shown}:{self.port}").rstrip("/")
        self.handler.base_url = self.base_url
        self.store.set_setting("public_url", self.base_url)
        self.workers = Workers(data, workers)
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []

    def _handler_class(self, public_url: str | None, options: Options) -> type[Handler]:
        return type(
            "BoundHandler",
            (Handler,),
            {
                "data": self.data,
                "store_path": self.data.db,
                "token": self.token,
                "base_url": public_url or "",
                "options": options,
                "feed_cache": FeedCache(),
                "_local": threading.local(),
                "wake": staticmethod(lambda: self.workers.wake.set()),
                "reviews": self.reviews,
            },
        )

    def _cleanup_temporary_files(self) -> None:
        """Temporary files of a run that was killed: never served (no final name), removed here."""
        for folder in (
            self.data.audio,
            self.data.feeds,
            self.data.downloads,
            *self.data.downloads.glob("*/"),
        ):
            for path in folder.glob(".*.tmp"):
                path.unlink(missing_ok=True)

    @property
    def status_url(self) -> str:
        return status_url(self.base_url, self.token)

    def start(self) -> None:
        self.workers.start()
        for target, name in ((self.httpd.serve_forever, "adcut-http"), (self._refresh_loop, "adcut-refresh")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def refresh_all(self) -> None:
        for feed in self.store.feeds():
            if self.stopping.is_set():
                return
            refresh_feed(self.store, self.data, feed, self.episodes)
            prune(self.store, self.data, feed, self.keep)
        self.workers.wake.set()

    def _refresh_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self.refresh_all()
            except AdcutError as error:
                log.warning("refresh: %s", error)
            except Exception:  # noqa: BLE001 - the loop must survive one bad refresh
                log.exception("refresh failed")
            self.stopping.wait(self.refresh_seconds)

    def stop(self) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.reviews.close_all()
        self.workers.stop()

    def wait(self) -> None:
        while not self.stopping.is_set():
            time.sleep(0.5)
