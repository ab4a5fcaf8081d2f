"""The labeller's web server: one episode, its labels, its waveform peaks and the page, on loopback.

Routes (everything under ``/api`` needs the session token, from the ``X-Adcut-Token`` header or
the ``token`` query parameter, compared in constant time):

- ``GET /`` and ``GET /static/<name>``: the page's own files, loaded from the package into memory
  at start. A request path is only ever a key into that dict, never a file-system path.
- ``GET /api/episode``: name, duration, classes, where labels are saved, the pre-filled segments.
- ``GET /api/audio``: the original file (HTTP range requests, so seeking is instant).
- ``GET /api/peaks``: the waveform pyramid (partial while the background decode runs).
- ``GET /api/labels`` / ``PUT /api/labels``: the current labels; a PUT is validated with the
  label-file rules and saved as an Audacity label file, atomically, the previous file kept as
  ``.bak``. A bad PUT gets a 4xx with ``{"error": message}`` and leaves the file untouched.
"""

from __future__ import annotations

import json
import logging
import math
import mimetypes
import os
import secrets
import socket
import threading
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from adcut.core.files import atomic_write_bytes, atomic_write_text
from adcut.core.segments import Segment, validate_segments
from adcut.core.units import Seconds
from adcut.errors import AdcutError, LabelError, OutputError
from adcut.formats.labels import format_audacity
from adcut.labeller.peaks import BackgroundPeaks

log = logging.getLogger(__name__)

TOKEN_HEADER = "x-adcut-token"
# A label list is a few kB; anything much larger is not from the page.
MAX_BODY_BYTES = 2_000_000
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# The page loads nothing from elsewhere, and nothing elsewhere may frame it.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; media-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
AUDIO_TYPES = {
    ".mp3": "audio/mpeg",
    ".wav": "audio/wav",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".m4a": "audio/mp4",
    ".m4b": "audio/mp4",
    ".aac": "audio/aac",
    ".mp4": "audio/mp4",
}


@dataclass
class PrefilledSegment:
    """A segment to start from; ``confidence`` (0-1) is set when a model proposed it."""

    segment: Segment
    confidence: float | None = None

    def to_dict(self) -> dict:
        out = self.segment.to_dict()
        out["confidence"] = None if self.confidence is None else round(float(self.confidence), 4)
        return out


@dataclass
class LabelSession:
    """Everything the server knows: the one episode, its classes, where labels go, the token."""

    episode: Path
    labels_path: Path  # the Audacity label file a save writes
    classes: tuple[str, ...]
    background: str  # the class of unlabelled time (not drawn as segments, not saved)
    declared_duration: Seconds | None  # from the container, until the peaks decode gives the real one
    prefill: list[PrefilledSegment] = field(default_factory=list)
    source: str = ""  # where the prefill came from, shown on the page
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    peaks: BackgroundPeaks | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def start_peaks(self) -> None:
        if self.peaks is None:
            self.peaks = BackgroundPeaks(self.episode)

    @property
    def mark_class(self) -> str:
        """The class the ``[`` / ``]`` keys mark: the first one that is not the background."""
        return next(c for c in self.classes if c != self.background)

    def duration(self) -> Seconds | None:
        """The decoded length once known, else the container's declared length."""
        if self.peaks is not None:
            decoded, complete, error = self.peaks.progress()
            if complete and error is None:
                return decoded
        return self.declared_duration

    def current_segments(self) -> list[dict]:
        """The labels as they are now: the prefill, or what was saved last."""
        return [p.to_dict() for p in self.prefill]

    def save(self, segments: list[Segment]) -> None:
        """Write the Audacity file atomically, keeping what was there before as ``<file>.bak``."""
        with self._lock:
            target = self.labels_path
            if target.exists():
                backup = target.with_name(target.name + ".bak")
                _atomic_copy(target, backup)
            atomic_write_text(target, format_audacity(segments))
            # What was saved is what a reload shows; the model's confidences no longer apply.
            self.prefill = [PrefilledSegment(s) for s in segments]


def _atomic_copy(source: Path, target: Path) -> None:
    try:
        data = source.read_bytes()
    except OSError as error:
        raise OutputError(f"{source}: cannot read the previous labels ({error.strerror or error})") from None
    atomic_write_bytes(target, data, "the copy of the previous labels")


def parse_segments(payload, session: LabelSession) -> list[Segment]:
    """Segments from the page's ``{"segments": [...]}``, checked with the label-file rules (LabelError)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("segments"), list):
        raise LabelError('labels: expected {"segments": [{"label", "start", "end"}, ...]}')
    segments = []
    for i, item in enumerate(payload["segments"]):
        where = f"labels: segment {i + 1}"
        if not isinstance(item, dict) or not {"label", "start", "end"} <= item.keys():
            raise LabelError(f"{where}: needs 'label', 'start' and 'end'")
        start, end, label = item["start"], item["end"], item["label"]
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (start, end)):
            raise LabelError(f"{where}: start and end must be numbers of seconds")
        if not isinstance(label, str):
            raise LabelError(f"{where}: label must be a class name")
        if not (math.isfinite(start) and math.isfinite(end)):
            raise LabelError(f"{where}: times must be finite numbers")
        segments.append(Segment(float(start), float(end), label))
    validate_segments(segments, duration=session.duration(), classes=session.classes, source="labels")
    return segments


def _load_static() -> dict[str, tuple[bytes, str]]:
    """The page's files, read once from the installed package: name -> (content, media type)."""
    files: dict[str, tuple[bytes, str]] = {}
    web = resources.files("adcut") / "web"
    for entry in web.iterdir():
        suffix = os.path.splitext(entry.name)[1]
        if entry.is_file() and suffix in STATIC_TYPES:
            files[entry.name] = (entry.read_bytes(), STATIC_TYPES[suffix])
    if "index.html" not in files:
        raise AdcutError("the labeller's page is missing from this installation (adcut/web/index.html)")
    return files


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=SECURITY_HEADERS)


def create_app(session: LabelSession) -> Starlette:
    """The ASGI app for one labelling session (starts the background peaks decode)."""
    static = _load_static()
    session.start_peaks()

    def authorised(request: Request) -> bool:
        given = request.headers.get(TOKEN_HEADER) or request.query_params.get("token") or ""
        return secrets.compare_digest(given.encode(), session.token.encode())

    def denied() -> JSONResponse:
        return _error(403, "missing or wrong token: open the address that 'adcut label' printed")

    def static_file(name: str) -> Response:
        if name not in static:
            return _error(404, "not found")
        content, media_type = static[name]
        return Response(content, media_type=media_type, headers=SECURITY_HEADERS)

    async def index(request: Request) -> Response:
        return static_file("index.html")

    async def static_route(request: Request) -> Response:
        return static_file(request.path_params["name"])

    async def episode(request: Request) -> Response:
        if not authorised(request):
            return denied()
        duration = session.duration()
        return JSONResponse(
            {
                "name": session.episode.name,
                "duration": duration,
                "classes": list(session.classes),
                "background": session.background,
                "mark_class": session.mark_class,
                "labels_path": str(session.labels_path),
                # Beside the episode (the usual case) the name says it all.
                "labels_shown": (
                    session.labels_path.name
                    if session.labels_path.parent.resolve() == session.episode.parent.resolve()
                    else str(session.labels_path)
                ),
                "source": session.source,
                "segments": session.current_segments(),
            },
            headers=SECURITY_HEADERS,
        )

    async def audio(request: Request) -> Response:
        if not authorised(request):
            return denied()
        suffix = session.episode.suffix.lower()
        media_type = (
            AUDIO_TYPES.get(suffix)
            or mimetypes.guess_type(session.episode.name)[0]
            or "application/octet-stream"
        )
        # FileResponse answers Range requests (206 + Content-Range) and sends Accept-Ranges.
        return FileResponse(session.episode, media_type=media_type, headers={"Cache-Control": "no-store"})

    async def peaks(request: Request) -> Response:
        if not authorised(request):
            return denied()
        assert session.peaks is not None
        return JSONResponse(session.peaks.snapshot().to_json(), headers=SECURITY_HEADERS)

    async def labels(request: Request) -> Response:
        if not authorised(request):
            return denied()
        if request.method == "GET":
            return JSONResponse({"segments": session.current_segments()}, headers=SECURITY_HEADERS)
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            return _error(413, "labels: request too large")
        try:
            payload = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            return _error(400, "labels: the request is not valid JSON")
        try:
            segments = parse_segments(payload, session)
        except LabelError as error:
            return _error(422, str(error))
        try:
            session.save(segments)
        except AdcutError as error:
            return _error(500, str(error))
        log.info("saved %d labels to %s", len(segments), session.labels_path)
        return JSONResponse(
            {"saved": str(session.labels_path), "count": len(segments)}, headers=SECURITY_HEADERS
        )

    async def not_found(request: Request, exc) -> Response:
        status = getattr(exc, "status_code", 404)
        return _error(status, "method not allowed" if status == 405 else "not found")

    routes = [
        Route("/", index, methods=["GET"]),
        Route("/static/{name}", static_route, methods=["GET"]),
        Route("/api/episode", episode, methods=["GET"]),
        Route("/api/audio", audio, methods=["GET", "HEAD"]),
        Route("/api/peaks", peaks, methods=["GET"]),
        Route("/api/labels", labels, methods=["GET", "PUT"]),
    ]
    return Starlette(routes=routes, exception_handlers={404: not_found, 405: not_found})


# --------------------------------------------------------------------------- running


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free one); AdcutError when it cannot be had."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror:
        raise AdcutError(f"--host {host}: not an address of this machine") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(64)
    except OSError as error:
        sock.close()
        if error.errno == 98:  # EADDRINUSE
            raise AdcutError(
                f"port {port} is in use; choose another with --port (0: any free port)"
            ) from None
        raise AdcutError(f"cannot listen on {host}:{port} ({error.strerror or error})") from None
    return sock


def page_url(session: LabelSession, sock: socket.socket, host: str) -> str:
    port = sock.getsockname()[1]
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else ("[::1]" if host == "::" else host)
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/?token={session.token}"


def make_server(session: LabelSession):
    """A uvicorn server for ``session`` (run it with ``server.run(sockets=[sock])``; stop with ``should_exit``)."""
    import uvicorn

    # An open page keeps connections alive (audio streaming): do not wait for it on Ctrl+C.
    config = uvicorn.Config(
        create_app(session),
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=2,
    )
    return uvicorn.Server(config)
