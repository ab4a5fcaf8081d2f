"""Answering the HTTP requests of ``adcut serve``: ad-free feeds, their audio, chapters and transcripts, the status
page (drawn by status.py), and its review and re-cut buttons.

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
import logging
import re
import socket
import threading
import time
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit

from adcut.errors import AdcutError
from adcut.serve.choices import DEFAULT_MARK, PENDING_ORIGINAL, PENDING_WAIT
from adcut.serve.feed import Ready, Waiting, rewrite
from adcut.serve.paths import DataDir
from adcut.serve.refresh import upstream_copy
from adcut.serve.status import status_html
from adcut.serve.store import DOWNLOADING, PROCESSING, QUEUED, Episode, Store
from adcut.serve.transcripts import CONTENT_TYPES as TRANSCRIPT_TYPES
from adcut.serve.transcripts import FORMATS as TRANSCRIPT_FORMATS
from adcut.serve.transcripts import file_name as transcript_file
from adcut.serve.urls import feed_url
from adcut.serve.worker import AUDIO_SUFFIXES, audio_suffix

if TYPE_CHECKING:
    import uvicorn

    from adcut.serve.store import Feed

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
_WAITING_NAME = re.compile(
    r"(\d{1,12})-(\d{1,12})(\.[a-z0-9]{1,5})"
)  # FEED-EPISODE.mp3: the newest cut, or 503
RETRY_AFTER_SECONDS = 60


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


class FeedCache:
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
                raise AdcutError(
                    "the original audio of this episode is not kept (it was not audio, or not downloaded)"
                )
            folder = episode_folder(self.data, episode_id)
            labels = next(
                (p for p in (folder / "episode.txt", folder / "episode.adcut.json") if p.exists()), None
            )
            session = build_session(original, labels)
            sock = bind("127.0.0.1", 0)
            server = make_server(session)
            thread = threading.Thread(
                target=server.run, kwargs={"sockets": [sock]}, name=f"adcut-review-{episode_id}", daemon=True
            )
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
    feed_cache: FeedCache
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
                return self._text(
                    HTTPStatus.FORBIDDEN,
                    "forbidden: this address needs the token adcut serve printed\n",
                    head,
                )
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
    def _send(
        self, status: int, body: bytes, content_type: str, head: bool, headers: dict | None = None
    ) -> None:
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
            return self._text(
                HTTPStatus.SERVICE_UNAVAILABLE,
                f"the upstream feed is not available yet ({reason})\n",
                head,
                {"Retry-After": "60"},
            )
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
                    episode.audio_size,
                    episode.audio_type or "audio/mpeg",
                    episode.duration or 0.0,
                    tuple(
                        (f"{self.base_url}/transcripts/{episode.audio_name}.{fmt}?token={self.token}", fmt)
                        for fmt in TRANSCRIPT_FORMATS
                        if (self.data.audio / transcript_file(episode.audio_name, fmt)).is_file()
                    ),
                )
            elif mode == PENDING_WAIT and self._in_queue(episode):
                name = waiting_name(episode)
                waiting[episode.guid] = Waiting(
                    f"{self.base_url}/audio/{name}?token={self.token}", AUDIO_SUFFIXES[Path(name).suffix]
                )
        return rewrite(
            copy.read_bytes(),
            feed_url=feed_url(self.base_url, feed.name, self.token),
            ready=ready,
            mark=self.options.mark,
            list_pending=mode == PENDING_ORIGINAL,
            waiting=waiting,
        )

    def _in_queue(self, episode: Episode) -> bool:
        """Queued or being processed: its ad-free audio is coming (a failed or never-queued one is not)."""
        return episode.state in (QUEUED, DOWNLOADING, PROCESSING) or self.store.job_state(episode.id) in (
            "queued",
            "leased",
        )

    def _waiting_audio(self, name: str, head: bool) -> None:
        """``FEED-EPISODE.mp3``: the newest cut once there is one; 503 + Retry-After while it is being made."""
        match = _WAITING_NAME.fullmatch(name)
        episode = self.store.episode(int(match.group(2))) if match else None
        if (
            match is None
            or episode is None
            or episode.feed_id != int(match.group(1))
            or waiting_name(episode) != name
        ):
            return self._text(HTTPStatus.NOT_FOUND, "no such episode\n", head)
        if episode.audio_name and (self.data.audio / episode.audio_name).is_file():
            return self._audio(episode.audio_name, head)
        if not self._in_queue(episode):
            reason = f": {episode.reason}" if episode.reason else ""
            return self._text(
                HTTPStatus.NOT_FOUND,
                f"this episode is not being made ad-free ({episode.state}{reason})\n",
                head,
            )
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
            return self._text(
                HTTPStatus.NOT_FOUND, "no such episode (it may have been re-cut: refresh the feed)\n", head
            )
        stat = path.stat()
        size = stat.st_size
        etag = f'"{name}-{size}"'
        common = {
            "Accept-Ranges": "bytes",
            "ETag": etag,
            "Last-Modified": formatdate(stat.st_mtime, usegmt=True),
            "Cache-Control": "public, max-age=86400",
        }
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
            return self._send(
                HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE,
                b"",
                "text/plain",
                head,
                {**common, "Content-Range": f"bytes */{size}"},
            )
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
        self._send(
            HTTPStatus.OK,
            path.read_bytes(),
            "application/json+chapters",
            head,
            {"Access-Control-Allow-Origin": "*"},
        )

    def _transcript(self, name: str, fmt: str, head: bool) -> None:
        episode = self.store.episode_by_audio(name) if _NAME.match(name) else None
        path = self.data.audio / transcript_file(name, fmt)
        if episode is None or not path.is_file():
            return self._text(HTTPStatus.NOT_FOUND, "no such transcript\n", head)
        charset = "; charset=utf-8" if fmt != "json" else ""
        self._send(
            HTTPStatus.OK,
            path.read_bytes(),
            TRANSCRIPT_TYPES[fmt] + charset,
            head,
            {"Access-Control-Allow-Origin": "*"},
        )

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
        self._send(
            HTTPStatus.OK,
            status_html(self.store, self.base_url, self.token, self.data).encode(),
            "text/html; charset=utf-8",
            head,
            {"Cache-Control": "no-store"},
        )
