"""Upstream HTTP: feeds with conditional GET, enclosures streamed to a temporary file with resume.

Only ``http``/``https`` URLs (also after a redirect); every request has a timeout and a size cap;
an enclosure is downloaded to ``NAME.part`` and renamed when whole, retried with backoff and
resumed with ``Range`` where the server allows it.
"""

from __future__ import annotations

import http.client
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from adcut import __version__
from adcut.errors import AdcutError, OutputError

log = logging.getLogger(__name__)

USER_AGENT = f"adcut/{__version__} (ad-free feed proxy)"
FEED_MAX_BYTES = 20 * 1024 * 1024
AUDIO_MAX_BYTES = 1024 * 1024 * 1024
TIMEOUT_SECONDS = 30.0
CHUNK = 256 * 1024
DOWNLOAD_MAX_SECONDS = 30 * 60.0


class FetchError(AdcutError):
    """An upstream feed or enclosure could not be had (down, refused, too big, not what was expected)."""


def check_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise FetchError(f"{url}: only http:// and https:// URLs are accepted")
    return url


PERMANENT_REDIRECTS = (301, 308)


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http(s) URLs only, and notes each hop (``chain``: status and target)."""

    def __init__(self) -> None:
        super().__init__()
        self.chain: list[tuple[int, str]] = []

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_url(newurl)
        self.chain.append((code, newurl))
        return super().redirect_request(req, fp, code, msg, headers, newurl)

    def permanent_url(self) -> str | None:
        """Where the URL moved for good: the end of the leading run of 301/308 hops (a 302/307 ends it)."""
        moved = None
        for code, url in self.chain:
            if code not in PERMANENT_REDIRECTS:
                break
            moved = url
        return moved


_opener = urllib.request.build_opener(_Redirects())


def _open(
    url: str, headers: dict[str, str], timeout: float, opener: urllib.request.OpenerDirector | None = None
):
    request = urllib.request.Request(check_url(url), headers={"User-Agent": USER_AGENT, **headers})
    return (opener or _opener).open(request, timeout=timeout)


def _reason(url: str, error: Exception) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"{url}: upstream answered {error.code} {error.reason}"
    if isinstance(error, urllib.error.URLError):
        return f"{url}: upstream unreachable ({getattr(error.reason, 'strerror', None) or error.reason})"
    if isinstance(error, TimeoutError):
        return f"{url}: upstream timed out"
    return f"{url}: {getattr(error, 'strerror', None) or error}"


@dataclass(frozen=True)
class FeedResponse:
    body: bytes | None  # None: not modified since the ETag / Last-Modified given
    etag: str | None
    last_modified: str | None
    content_type: str
    moved_to: str | None = None  # upstream answered 301/308: the feed's new address


def fetch_feed(
    url: str,
    etag: str | None = None,
    last_modified: str | None = None,
    timeout: float = TIMEOUT_SECONDS,
    max_bytes: int = FEED_MAX_BYTES,
) -> FeedResponse:
    """GET the feed, conditionally; FetchError when upstream is down, refuses, or sends too much."""
    headers = {"Accept": "application/rss+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.1"}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    redirects = _Redirects()  # one per request: its hops tell a permanent move from a temporary one
    opener = urllib.request.build_opener(redirects)
    try:
        with _open(url, headers, timeout, opener) as response:
            body = response.read(max_bytes + 1)
            if len(body) > max_bytes:
                raise FetchError(f"{url}: the feed is larger than {max_bytes // (1024 * 1024)} MB")
            return FeedResponse(
                body,
                response.headers.get("ETag"),
                response.headers.get("Last-Modified"),
                response.headers.get("Content-Type", ""),
                redirects.permanent_url(),
            )
    except urllib.error.HTTPError as error:
        if error.code == 304:
            return FeedResponse(None, etag, last_modified, "", redirects.permanent_url())
        raise FetchError(_reason(url, error)) from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        raise FetchError(_reason(url, error)) from None


def download(
    url: str,
    target: Path,
    *,
    timeout: float = TIMEOUT_SECONDS,
    max_bytes: int = AUDIO_MAX_BYTES,
    attempts: int = 4,
    backoff: float = 1.0,
    max_seconds: float = DOWNLOAD_MAX_SECONDS,
) -> str:
    """Stream ``url`` to ``target`` (through ``target.part``, resumed after a broken transfer); its Content-Type.

    An HTTP error from 400 to 499 (the file is gone) is not retried; a broken connection, a timeout or
    a 5xx is, with doubling pauses. HTML or text instead of audio is refused.
    """
    target = Path(target)
    part = target.with_name(target.name + ".part")
    last_error = ""
    deadline = time.monotonic() + max_seconds  # a server that trickles forever never hits the socket timeout
    for attempt in range(attempts):
        if attempt:
            time.sleep(backoff * 2 ** (attempt - 1))
        have = part.stat().st_size if part.exists() else 0
        headers = {"Accept": "audio/*, */*;q=0.5"}
        if have:
            headers["Range"] = f"bytes={have}-"
        try:
            with _open(url, headers, timeout) as response:
                content_type = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
                if content_type.startswith("text/") or content_type in (
                    "application/json",
                    "application/xhtml+xml",
                ):
                    raise FetchError(f"{url}: not audio (the server sent {content_type})")
                if response.status != 206:
                    have = 0  # the server ignored the Range: start over
                length = response.headers.get("Content-Length")
                expected = have + int(length) if length else None
                if expected and expected > max_bytes:
                    raise FetchError(f"{url}: larger than the {max_bytes // (1024 * 1024)} MB cap")
                with open(part, "ab" if have else "wb") as out:
                    while chunk := response.read1(CHUNK):
                        if time.monotonic() > deadline:
                            raise FetchError(
                                f"{url}: the download took longer than {max_seconds / 60:.0f} minutes"
                            )
                        have += len(chunk)
                        if have > max_bytes:
                            raise FetchError(f"{url}: larger than the {max_bytes // (1024 * 1024)} MB cap")
                        out.write(chunk)
                if expected and have < expected:
                    raise ConnectionError("the transfer ended early")
            with open(part, "rb") as handle:
                head = handle.read(512).lstrip().lower()
            if head.startswith((b"<!doctype", b"<html", b"<?xml", b"{")):
                part.unlink(missing_ok=True)
                raise FetchError(f"{url}: not audio (the server sent a web page or a document)")
            os.replace(part, target)
            return content_type
        except FetchError as error:
            if "took longer" not in str(error):  # a slow transfer may resume next time
                part.unlink(missing_ok=True)
            raise
        except urllib.error.HTTPError as error:
            if error.code == 416 and have:  # our partial file is whole already, or stale: start over
                part.unlink(missing_ok=True)
            elif 400 <= error.code < 500:
                part.unlink(missing_ok=True)
                raise FetchError(_reason(url, error)) from None
            last_error = _reason(url, error)
        except (OSError, http.client.HTTPException) as error:
            if getattr(error, "errno", None) == 28:
                part.unlink(missing_ok=True)  # free the space again, so the failure can be recorded
                raise OutputError(f"{part.parent}: no space left on the device") from None
            last_error = _reason(url, error)
        log.info("download %s: attempt %d failed (%s)", url, attempt + 1, last_error)
    raise FetchError(f"{last_error} (gave up after {attempts} attempts)")
