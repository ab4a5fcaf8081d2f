"""The HTTP side of ``adcut serve``: ad-free feeds, their audio and chapters, and the status page.

Every URL carries the secret token as ``?token=`` (podcast apps cannot send headers); without it
the answer is 403. No part of a request path is used as a file name: audio and chapter names are
looked up in the database, and only names adcut made itself are ever opened.

Episodes not processed yet are left out of the feed by default: an app then simply sees a new
episode appear when it is ready, never an audio URL that times out or answers with an error page
while the cut is made, and never a second copy of an episode when the ad-free one replaces the
original (the GUID would be the same, but some apps keep the downloaded original).
``--list-pending=original`` lists them with their original enclosure; ``--list-pending=wait`` lists
the episodes in the queue with their ad-free URL (``/audio/FEED-EPISODE.mp3``, without a revision),
which answers GET and HEAD with ``503`` and ``Retry-After`` and an empty body (never a page or JSON
an app could take for audio) until the cut is ready, then serves the newest cut.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, quote, urlsplit

from adcut.errors import AdcutError
from adcut.serve.feed import DEFAULT_MARK, PENDING_ORIGINAL, PENDING_WAIT, Ready, Waiting, rewrite
from adcut.serve.paths import DataDir
from adcut.serve.refresh import DEFAULT_EPISODES, prune, refresh_feed, upstream_copy
from adcut.serve.store import DONE, DOWNLOADING, PROCESSING, QUEUED, Episode, Store
from adcut.serve.transcripts import CONTENT_TYPES as TRANSCRIPT_TYPES
from adcut.serve.transcripts import FORMATS as TRANSCRIPT_FORMATS
from adcut.serve.transcripts import file_name as transcript_file
from adcut.serve.worker import AUDIO_SUFFIXES, audio_suffix, episode_folder, original_audio

if TYPE_CHECKING:
    import uvicorn

    from adcut.serve.store import Feed

log = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8766
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_WAITING_NAME = re.compile(r"(\d{1,12})-(\d{1,12})(\.[a-z0-9]{1,5})")  # FEED-EPISODE.mp3: the newest cut, or 503
RETRY_AFTER_SECONDS = 60


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def feed_url(base: str, name: str, token: str) -> str:
    return f"{base.rstrip('/')}/feed/{quote(name)}.xml?token={token}"


def status_url(base: str, token: str) -> str:
    return f"{base.rstrip('/')}/?token={token}"


def public_base(store: Store) -> str:
    return store.setting("public_url") or f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"


class Options:
    """``mark``: added to the show's title; ``list_pending``: None, "original" or "wait" (see the module's text)."""

    def __init__(self, *, mark: str = DEFAULT_MARK, list_pending: str | None = None):
        self.mark = mark
        self.list_pending = list_pending


def waiting_name(episode: Episode) -> str:
    """The revision-less audio name of an episode (``--list-pending=wait``): 503 until cut, then the newest cut."""
    return f"{episode.feed_id}-{episode.id}{audio_suffix(episode.upstream_url, episode.upstream_type)}"


class Unsatisfiable:
    """A ``Range`` that asks for nothing inside the file (416)."""


UNSATISFIABLE = Unsatisfiable()


def parse_range(header: str, size: int) -> tuple[int, int] | None | Unsatisfiable:
    """``(first, last)`` of a single ``bytes=`` range; None to send the whole file; UNSATISFIABLE for 416."""
    match = re.fullmatch(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", header or "")
    if not match or (not match.group(1) and not match.group(2)):
        return None  # several ranges, or not bytes: the whole file is a valid answer
    first, last = match.group(1), match.group(2)
    if not first:  # the last N bytes
        count = int(last)
        if count == 0 or size == 0:
            return UNSATISFIABLE
        return max(0, size - count), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return UNSATISFIABLE
    return start, end


class _FeedCache:
    """The last rewritten XML of each feed, reused until the upstream copy or an episode changes."""

    def __init__(self):
        self._lock = threading.Lock()
        self._entries: dict[int, tuple[tuple, bytes, str]] = {}

    def get(self, feed_id: int, key: tuple, make: Callable[[], bytes]) -> tuple[bytes, str]:
        with self._lock:
            entry = self._entries.get(feed_id)
        if entry and entry[0] == key:
            return entry[1], entry[2]
        body = make()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        with self._lock:
            self._entries[feed_id] = (key, body, etag)
        return body, etag


class Reviews:
    """Labeller pages for the episodes, one per episode, opened from the status page, on 127.0.0.1.

    The page starts from the reviewed labels (``episode.txt``) when there are some, else from the
    detection (``episode.adcut.json``); saving writes ``episode.txt``, and a re-cut then cuts from it.
    """

    def __init__(self, data: DataDir):
        self.data = data
        self._lock = threading.Lock()
        self._open: dict[int, tuple[uvicorn.Server, threading.Thread, str]] = {}

    def open(self, episode_id: int) -> str:
        from adcut.labeller.server import bind, make_server, page_url
        from adcut.labeller.session import build_session
        from adcut.serve.worker import episode_folder, original_audio

        with self._lock:
            running = self._open.get(episode_id)
            if running and running[1].is_alive():
                return running[2]
            original = original_audio(self.data, episode_id)
            if original is None:
                raise AdcutError("the original audio of this episode is not kept (it was not audio, or not downloaded)")
            folder = episode_folder(self.data, episode_id)
            labels = next((p for p in (folder / "episode.txt", folder / "episode.adcut.json") if p.exists()), None)
            session = build_session(original, labels)
            sock = bind("127.0.0.1", 0)
            server = make_server(session)
            thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"adcut-review-{episode_id}",
                                      daemon=True)
            thread.start()
            deadline = time.monotonic() + 10
            while not server.started and time.monotonic() < deadline:
                time.sleep(0.02)
            url = page_url(session, sock, "127.0.0.1")
            self._open[episode_id] = (server, thread, url)
            return url

    def close_all(self) -> None:
        with self._lock:
            for server, _, _ in self._open.values():
                server.should_exit = True
            self._open.clear()


class Handler(BaseHTTPRequestHandler):
    server_version = "adcut-serve"
    protocol_version = "HTTP/1.1"
    timeout = 120  # an idle keep-alive connection is closed after this many seconds
    # Set on the subclass made per server.
    data: DataDir
    store_path: Path
    token: str
    base_url: str
    options: Options
    feed_cache: _FeedCache
    wake: Callable[[], None]  # tells the workers a job is waiting (a staticmethod on the subclass)
    reviews: Reviews
    _local = threading.local()

    def setup(self):
        super().setup()
        # Headers and a small body go out at once: without this, a 2-byte range probe waits for the
        # client's delayed ACK (40 ms) behind Nagle's algorithm.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        log.debug("%s - %s", self.address_string(), format % args)

    @property
    def store(self) -> Store:
        store = getattr(self._local, "store", None)
        if store is None:
            store = self._local.store = Store(self.store_path)
        return store

    # ------------------------------------------------------------------ dispatch
    def do_HEAD(self):  # noqa: N802 - http.server's naming
        self._dispatch(head=True)

    def do_GET(self):  # noqa: N802
        self._dispatch(head=False)

    def do_POST(self):  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(min(length, 65536))
        self._dispatch(head=False, post=True)

    def _dispatch(self, head: bool, post: bool = False) -> None:
        try:
            url = urlsplit(self.path)
            token = parse_qs(url.query).get("token", [""])[0]
            if not hmac.compare_digest(token.encode(), self.token.encode()):
                return self._text(HTTPStatus.FORBIDDEN, "forbidden: this address needs the token adcut serve printed\n", head)
            path = url.path
            if post:
                match = re.fullmatch(r"/recut/(\d+)", path)
                if match:
                    return self._recut(int(match.group(1)))
                match = re.fullmatch(r"/review/(\d+)", path)
                if match:
                    return self._review(int(match.group(1)))
                return self._text(HTTPStatus.NOT_FOUND, "not found\n", head)
            if path == "/":
                return self._status_page(head)
            match = re.fullmatch(r"/feed/([^/]+)\.xml", path)
            if match:
                return self._feed(match.group(1), head)
            match = re.fullmatch(r"/audio/([^/]+)", path)
            if match:
                return self._audio(match.group(1), head)
            match = re.fullmatch(r"/chapters/([^/]+)\.json", path)
            if match:
                return self._chapters(match.group(1), head)
            match = re.fullmatch(r"/transcripts/([^/]+)\.(vtt|srt|json)", path)
            if match:
                return self._transcript(match.group(1), match.group(2), head)
            return self._text(HTTPStatus.NOT_FOUND, "not found\n", head)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except AdcutError as error:
            log.warning("%s", error)
            self._text(HTTPStatus.SERVICE_UNAVAILABLE, f"{error}\n", head, {"Retry-After": "60"})

    # ------------------------------------------------------------------ answers
    def _send(self, status: int, body: bytes, content_type: str, head: bool, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _text(self, status: int, text: str, head: bool, headers: dict | None = None) -> None:
        self._send(status, text.encode(), "text/plain; charset=utf-8", head, headers)

    def _feed(self, name: str, head: bool) -> None:
        if not _NAME.match(name):
            return self._text(HTTPStatus.NOT_FOUND, "no such feed\n", head)
        try:
            feed = self.store.feed(name)
        except AdcutError:
            return self._text(HTTPStatus.NOT_FOUND, "no such feed\n", head)
        copy = upstream_copy(self.data, feed)
        if not copy.exists():
            reason = feed.fetch_error or "not fetched yet"
            return self._text(HTTPStatus.SERVICE_UNAVAILABLE, f"the upstream feed is not available yet ({reason})\n",
                              head, {"Retry-After": "60"})
        stat = copy.stat()
        version = (stat.st_mtime_ns, stat.st_size, self.store.feed_version(feed.id))
        body, etag = self.feed_cache.get(feed.id, version, lambda: self._rewrite(feed, copy))
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if etag in [tag.strip() for tag in self.headers.get("If-None-Match", "").split(",")]:
            self.send_response(HTTPStatus.NOT_MODIFIED)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self._send(HTTPStatus.OK, body, "application/rss+xml; charset=utf-8", head, headers)

    def _rewrite(self, feed: Feed, copy: Path) -> bytes:
        ready, waiting = {}, {}
        mode = self.options.list_pending
        for episode in self.store.episodes(feed.id):
            if episode.audio_name and episode.audio_size:
                ready[episode.guid] = Ready(
                    f"{self.base_url}/audio/{episode.audio_name}?token={self.token}",
                    f"{self.base_url}/chapters/{episode.audio_name}.json?token={self.token}",
                    episode.audio_size, episode.audio_type or "audio/mpeg", episode.duration or 0.0,
                    tuple((f"{self.base_url}/transcripts/{episode.audio_name}.{fmt}?token={self.token}", fmt)
                          for fmt in TRANSCRIPT_FORMATS
                          if (self.data.audio / transcript_file(episode.audio_name, fmt)).is_file()))
            elif mode == PENDING_WAIT and self._in_queue(episode):
                name = waiting_name(episode)
                waiting[episode.guid] = Waiting(f"{self.base_url}/audio/{name}?token={self.token}",
                                                AUDIO_SUFFIXES[Path(name).suffix])
        return rewrite(copy.read_bytes(), feed_url=feed_url(self.base_url, feed.name, self.token), ready=ready,
                       mark=self.options.mark, list_pending=mode == PENDING_ORIGINAL, waiting=waiting)

    def _in_queue(self, episode: Episode) -> bool:
        """Queued or being processed: its ad-free audio is coming (a failed or never-queued one is not)."""
        return episode.state in (QUEUED, DOWNLOADING, PROCESSING) or self.store.job_state(episode.id) in ("queued", "leased")

    def _waiting_audio(self, name: str, head: bool) -> None:
        """``FEED-EPISODE.mp3``: the newest cut once there is one; 503 + Retry-After while it is being made."""
        match = _WAITING_NAME.fullmatch(name)
        episode = self.store.episode(int(match.group(2))) if match else None
        if match is None or episode is None or episode.feed_id != int(match.group(1)) or waiting_name(episode) != name:
            return self._text(HTTPStatus.NOT_FOUND, "no such episode\n", head)
        if episode.audio_name and (self.data.audio / episode.audio_name).is_file():
            return self._audio(episode.audio_name, head)
        if not self._in_queue(episode):
            reason = f": {episode.reason}" if episode.reason else ""
            return self._text(HTTPStatus.NOT_FOUND, f"this episode is not being made ad-free ({episode.state}{reason})\n",
                              head)
        # No body: an app must never store an error text (or a page, or JSON) as the episode's audio.
        self.send_response(HTTPStatus.SERVICE_UNAVAILABLE)
        self.send_header("Retry-After", str(RETRY_AFTER_SECONDS))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _audio(self, name: str, head: bool) -> None:
        episode = self.store.episode_by_audio(name) if _NAME.match(name) else None
        path = self.data.audio / name
        if episode is None and _WAITING_NAME.fullmatch(name):
            return self._waiting_audio(name, head)
        if episode is None or not path.is_file():
            return self._text(HTTPStatus.NOT_FOUND, "no such episode (it may have been re-cut: refresh the feed)\n", head)
        stat = path.stat()
        size = stat.st_size
        etag = f'"{name}-{size}"'
        common = {"Accept-Ranges": "bytes", "ETag": etag, "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
                  "Cache-Control": "public, max-age=86400"}
        if self.headers.get("If-None-Match", "").strip() == etag:
            self.send_response(HTTPStatus.NOT_MODIFIED)
            for key, value in common.items():
                self.send_header(key, value)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        wanted = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        span = parse_range(wanted, size) if wanted and (not if_range or if_range.strip() == etag) else None
        if isinstance(span, Unsatisfiable):
            return self._send(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, b"", "text/plain", head,
                              {**common, "Content-Range": f"bytes */{size}"})
        first, last = span if span else (0, size - 1)
        count = last - first + 1 if size else 0
        self.send_response(HTTPStatus.PARTIAL_CONTENT if span else HTTPStatus.OK)
        self.send_header("Content-Type", episode.audio_type or "audio/mpeg")
        self.send_header("Content-Length", str(count))
        if span:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        for key, value in common.items():
            self.send_header(key, value)
        self.end_headers()
        if head or not count:
            return
        with open(path, "rb") as handle:
            self.wfile.flush()
            self.connection.sendfile(handle, first, count)

    def _chapters(self, name: str, head: bool) -> None:
        episode = self.store.episode_by_audio(name) if _NAME.match(name) else None
        path = self.data.audio / f"{name}.chapters.json"
        if episode is None or not path.is_file():
            return self._text(HTTPStatus.NOT_FOUND, "no such chapters\n", head)
        self._send(HTTPStatus.OK, path.read_bytes(), "application/json+chapters", head,
                   {"Access-Control-Allow-Origin": "*"})

    def _transcript(self, name: str, fmt: str, head: bool) -> None:
        episode = self.store.episode_by_audio(name) if _NAME.match(name) else None
        path = self.data.audio / transcript_file(name, fmt)
        if episode is None or not path.is_file():
            return self._text(HTTPStatus.NOT_FOUND, "no such transcript\n", head)
        charset = "; charset=utf-8" if fmt != "json" else ""
        self._send(HTTPStatus.OK, path.read_bytes(), TRANSCRIPT_TYPES[fmt] + charset, head,
                   {"Access-Control-Allow-Origin": "*"})

    def _recut(self, episode_id: int) -> None:
        if self.store.episode(episode_id) is None:
            return self._text(HTTPStatus.NOT_FOUND, "no such episode\n", False)
        self.store.enqueue(episode_id, again=True)
        self.wake()
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", f"/?token={self.token}")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _review(self, episode_id: int) -> None:
        if self.store.episode(episode_id) is None:
            return self._text(HTTPStatus.NOT_FOUND, "no such episode\n", False)
        try:
            url = self.reviews.open(episode_id)
        except AdcutError as error:
            return self._text(HTTPStatus.CONFLICT, f"{error}\n", False)
        self.send_response(HTTPStatus.SEE_OTHER)
        self.send_header("Location", url)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _status_page(self, head: bool) -> None:
        self._send(HTTPStatus.OK, status_html(self.store, self.base_url, self.token, self.data).encode(),
                   "text/html; charset=utf-8", head, {"Cache-Control": "no-store"})


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    total = int(round(value))
    return f"{total // 60}:{total % 60:02d}"


STATUS_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:64em;padding:0 1em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em}
table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}
td,th{border-bottom:1px solid #e3e3e3;padding:.35em .5em;text-align:left;vertical-align:top}
th{font-weight:600;color:#555;font-size:.9em}td.num{text-align:right;font-variant-numeric:tabular-nums}
.state{display:inline-block;border-radius:.8em;padding:0 .6em;font-size:.85em;background:#eee}
.state.done{background:#dff3e0;color:#155a1c}.state.failed{background:#fbe1e1;color:#8a1111}
.state.downloading,.state.processing{background:#e1ecfb;color:#123f7a}
.reason{color:#8a1111;font-size:.9em}.warn{color:#8a1111}
code{font-size:.85em;word-break:break-all;background:#f5f5f5;padding:.1em .3em;border-radius:.2em}
button{font:inherit;font-size:.85em}form{margin:0;display:inline}.actions{white-space:nowrap}
.note{color:#555;font-size:.9em}
"""


def status_html(store: Store, base: str, token: str, data: DataDir | None = None) -> str:
    """The status page: each feed's ad-free URL, refresh state and episodes (state, reason, ad time removed)."""
    esc = html.escape
    busy = False
    parts = ["<!doctype html><html lang='en'><head><meta charset='utf-8'><title>adcut serve</title>",
             "<meta name='viewport' content='width=device-width, initial-scale=1'>",
             f"<style>{STATUS_STYLE}</style></head><body>", "<h1>adcut serve: ad-free feeds</h1>"]
    feeds = store.feeds()
    if not feeds:
        parts.append("<p>No feeds yet: <code>adcut feed add URL</code></p>")
    for feed in feeds:
        counts = store.counts(feed.id)
        url = feed_url(base, feed.name, token)
        parts.append(f"<h2 id='feed-{esc(feed.name)}'>{esc(feed.name)}</h2>")
        parts.append(f"<p>Subscribe in your podcast app: <a href='{esc(url)}'><code>{esc(url)}</code></a><br>"
                     f"Upstream: <code>{esc(feed.url)}</code>")
        if feed.fetch_error:
            parts.append(f"<br><span class='warn'>Last refresh failed: {esc(feed.fetch_error)} "
                         "(the last good copy is served)</span>")
        summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()) if state != "new")
        removed = sum(e.removed or 0.0 for e in store.episodes(feed.id) if e.state == DONE)
        parts.append(f"<br>Episodes: {esc(summary) or 'none queued yet'}; ad time removed {_seconds(removed) or '0:00'}</p>")
        parts.append("<table><tr><th>episode</th><th>state</th><th>ads removed</th><th>ad-free length</th><th></th></tr>")
        for episode in store.episodes(feed.id):
            if episode.state == "new":
                continue
            busy = busy or episode.state in ("queued", "downloading", "processing")
            label = episode.state
            if episode.state == DONE and store.job_state(episode.id) in ("queued", "leased"):
                label, busy = "done, re-cut queued", True
            reason = f"<div class='reason'>{esc(episode.reason)}</div>" if episode.reason else ""
            title = esc(episode.title or episode.guid)
            if episode.state == DONE and episode.audio_name:
                title = f"<a href='/audio/{esc(episode.audio_name)}?token={esc(token)}'>{title}</a>"
            action = ""
            if data is not None and original_audio(data, episode.id) is not None:
                action += (f"<form method='post' action='/review/{episode.id}?token={esc(token)}' target='_blank'>"
                           "<button title='check the ads found in the labeller; save, then re-cut'>review</button></form>")
                if (episode_folder(data, episode.id) / "episode.txt").exists():
                    reason += "<div class='note'>cut from your reviewed labels</div>"
            if episode.state in (DONE, "failed"):
                action += (f"<form method='post' action='/recut/{episode.id}?token={esc(token)}'>"
                           "<button>re-cut</button></form>")
            parts.append(f"<tr id='episode-{episode.id}'><td>{title}</td>"
                         f"<td><span class='state {esc(episode.state)}'>{esc(label)}</span>{reason}</td>"
                         f"<td class='num'>{_seconds(episode.removed)}</td><td class='num'>{_seconds(episode.duration)}</td>"
                         f"<td class='actions'>{action}</td></tr>")
        parts.append("</table>")
    if busy:  # follow the work without reloading by hand
        parts.insert(1, "<meta http-equiv='refresh' content='5'>")
    parts.append("</body></html>")
    return "".join(parts)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # apps refreshing at once: the default 5 drops connections (1 s SYN retries)


class Service:
    """The HTTP server, the worker threads and the periodic refresh, started and stopped together."""

    def __init__(self, data: DataDir, *, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, workers: int = 1,
                 refresh_minutes: float = 30.0, episodes: int = DEFAULT_EPISODES, public_url: str | None = None,
                 options: Options | None = None, keep: int = 0):
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
                raise AdcutError(f"port {port} is in use; choose another with --port (0: any free port)") from None
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
        return type("BoundHandler", (Handler,), {"data": self.data, "store_path": self.data.db, "token": self.token,
                                                 "base_url": public_url or "", "options": options,
                                                 "feed_cache": _FeedCache(), "_local": threading.local(),
                                                 "wake": staticmethod(lambda: self.workers.wake.set()),
                                                 "reviews": self.reviews})

    def _cleanup_temporary_files(self) -> None:
        """Temporary files of a run that was killed: never served (no final name), removed here."""
        for folder in (self.data.audio, self.data.feeds, self.data.downloads, *self.data.downloads.glob("*/")):
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


def json_status(store: Store, base: str, token: str) -> list[dict]:
    """What ``adcut feed list --json`` prints."""
    rows = []
    for feed in store.feeds():
        counts = store.counts(feed.id)
        rows.append({"name": feed.name, "upstream": feed.url, "url": feed_url(base, feed.name, token),
                     "model": feed.model, "processed": counts.get(DONE, 0),
                     "queued": sum(counts.get(s, 0) for s in ("queued", "downloading", "processing")),
                     "failed": counts.get("failed", 0), "last_error": feed.fetch_error})
    return rows

