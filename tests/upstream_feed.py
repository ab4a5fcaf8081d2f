"""A real upstream podcast host for the serve tests: a generated RSS feed and MP3 episodes on 127.0.0.1.

The feed has the tags real podcast feeds carry (``itunes:``, ``podcast:``, ``content:``, ``atom:link
rel=self``, ``itunes:new-feed-url``, transcripts in WebVTT, SRT, JSON and HTML, chapters). ``host.mode`` switches what ``/feed.xml``
answers: ``ok``, ``down`` (503), ``html``, ``malformed``, ``bomb`` (entity expansion). ``/audio/NAME``
serves the episodes with Range support; ``/missing.mp3`` is a 404 and ``/page.mp3`` an HTML page.
``host.redirects`` maps paths to ``(status, location)`` redirects; ``host.feed_paths`` are the paths
that serve the feed; ``host.new_feed_url`` maps them to the ``itunes:new-feed-url`` their feed names
(default ``/feed.xml``).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from adcut.demo.synth import EpisodeSpec, write_episode


@dataclass(frozen=True)
class UpstreamEpisode:
    guid: str
    title: str
    file: str  # name under /audio/, or an absolute path of the server ("/missing.mp3")
    spec: EpisodeSpec | None
    pub_date: str


# Every episode's chapters (of its original audio).
CHAPTERS = {
    "version": "1.2.0",
    "author": "Ann Example",
    "chapters": [
        {"startTime": 0, "title": "Intro"},
        {"startTime": 25, "title": "Sponsor"},
        {
            "startTime": 45,
            "title": "Main part",
            "url": "https://example.org/notes",
            "img": "https://example.org/a.jpg",
        },
    ],
}

# Every episode's transcript (of its original audio), cues before, inside and after the ad at 25-45 s.
CUES = [
    (5.0, 8.0, "Welcome to the show."),
    (30.0, 35.0, "Brought to you by Acme."),
    (50.0, 53.5, "Back to the main part."),
]


def _stamp(t: float, separator: str) -> str:
    return f"00:{int(t) // 60:02d}:{int(t) % 60:02d}{separator}{int(round(t % 1 * 1000)):03d}"


TRANSCRIPTS = {
    "vtt": (
        "text/vtt",
        "WEBVTT\n\n"
        + "\n\n".join(
            f"cue-{n}\n{_stamp(a, '.')} --> {_stamp(b, '.')}\n<v Ann>{text}"
            for n, (a, b, text) in enumerate(CUES)
        )
        + "\n",
    ),
    "srt": (
        "application/x-subrip",
        "\n\n".join(
            f"{n + 1}\n{_stamp(a, ',')} --> {_stamp(b, ',')}\n{text}" for n, (a, b, text) in enumerate(CUES)
        )
        + "\n",
    ),
    "json": (
        "application/json",
        json.dumps(
            {
                "version": "1.0.0",
                "segments": [
                    {"speaker": "Ann", "startTime": a, "endTime": b, "body": text} for a, b, text in CUES
                ],
            }
        ),
    ),
    "html": ("text/html", "<p>" + " ".join(text for _, _, text in CUES) + "</p>"),
}

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE rss [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
]>
<rss version="2.0"><channel><title>&d;&d;&d;&d;&d;&d;&d;&d;</title></channel></rss>
"""


def feed_xml(
    base: str, episodes: list[UpstreamEpisode], sizes: dict[str, int], new_feed_url: str | None = None
) -> bytes:
    items = []
    for episode in episodes:
        url = (
            episode.file
            if episode.file.startswith("http")
            else (f"{base}{episode.file}" if episode.file.startswith("/") else f"{base}/audio/{episode.file}")
        )
        items.append(f"""
    <item>
      <title>{episode.title}</title>
      <guid isPermaLink="false">{episode.guid}</guid>
      <pubDate>{episode.pub_date}</pubDate>
      <description>About {episode.title}</description>
      <content:encoded><![CDATA[<p>Show notes for <b>{episode.title}</b></p>]]></content:encoded>
      <enclosure url="{url}" length="{sizes.get(episode.file, 1000)}" type="audio/mpeg"/>
      <itunes:duration>{int(episode.spec.duration) if episode.spec else 60}</itunes:duration>
      <itunes:episode>{episode.guid[-1]}</itunes:episode>
      <itunes:explicit>false</itunes:explicit>
      <itunes:image href="{base}/art/{episode.guid}.jpg"/>
      <podcast:transcript url="{base}/transcripts/{episode.guid}.vtt" type="text/vtt" language="en"/>
      <podcast:transcript url="{base}/transcripts/{episode.guid}.srt" type="application/x-subrip"/>
      <podcast:transcript url="{base}/transcripts/{episode.guid}.json" type="application/json" rel="captions"/>
      <podcast:transcript url="{base}/transcripts/{episode.guid}.html" type="text/html"/>
      <podcast:chapters url="{base}/chapters/{episode.guid}.json" type="application/json+chapters"/>
      <podcast:soundbite startTime="12.5" duration="20">A moment</podcast:soundbite>
      <podcast:person role="host">Ann Example</podcast:person>
    </item>""")
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:itunes="http://www.itunes.com/dtds/podcast-1.0.dtd"
     xmlns:podcast="https://podcastindex.org/namespace/1.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"
     xmlns:atom="http://www.w3.org/2005/Atom">
  <channel>
    <title>Example Show</title>
    <link>{base}/</link>
    <description>A generated show</description>
    <language>en</language>
    <atom:link href="{base}/feed.xml" rel="self" type="application/rss+xml"/>
    <itunes:new-feed-url>{new_feed_url or f"{base}/feed.xml"}</itunes:new-feed-url>
    <itunes:author>Ann Example</itunes:author>
    <itunes:owner><itunes:name>Ann Example</itunes:name><itunes:email>ann@example.org</itunes:email></itunes:owner>
    <itunes:image href="{base}/art.jpg"/>
    <itunes:category text="Technology"/>
    <itunes:explicit>false</itunes:explicit>
    <itunes:type>episodic</itunes:type>
    <podcast:guid>917393e3-1b1e-5cef-ace4-edaa54e1f810</podcast:guid>
    <podcast:locked>no</podcast:locked>
    <podcast:funding url="{base}/support">Support the show</podcast:funding>{"".join(items)}
  </channel>
</rss>
""".encode()


class UpstreamHost:
    """Start with ``UpstreamHost(folder, episodes).start()``; ``url`` is the feed's address; ``stop()`` ends it."""

    def __init__(self, folder: Path, episodes: list[UpstreamEpisode], *, sample_rate: int = 16000):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.episodes = list(episodes)
        self.mode = "ok"
        # True, or a set of file names: that audio trickles out (4 KiB every 50 ms), so a download takes seconds
        self.slow: bool | set[str] = False
        self.fail_next: dict[str, int] = {}  # file name -> how many requests for it answer 503 first
        self.cut_short_next: set[str] = set()  # these send half their bytes, then drop the connection, once
        self.requests: list[tuple[str, str, dict]] = []
        self.redirects: dict[str, tuple[int, str]] = {}  # path -> (301/302/307/308, location)
        self.feed_paths: set[str] = {"/feed.xml"}
        self.new_feed_url: dict[str, str] = {}  # feed path -> the itunes:new-feed-url it names
        self.sizes: dict[str, int] = {}
        for number, episode in enumerate(self.episodes):
            if episode.spec is not None and not episode.file.startswith(("/", "http")):
                path = self.folder / episode.file
                if not path.exists():
                    write_episode(path, episode.spec, sample_rate=sample_rate, seed=number, bit_rate=64000)
                self.sizes[episode.file] = path.stat().st_size
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = f"{self.base}/feed.xml"

    def requests_for(self, path: str, method: str = "GET") -> list[dict]:
        """The headers of each request for ``path``."""
        return [headers for m, p, headers in self.requests if p == path and m == method]

    def feed_bytes(self, path: str = "/feed.xml") -> bytes:
        return feed_xml(self.base, self.episodes, self.sizes, self.new_feed_url.get(path))

    def start(self) -> UpstreamHost:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _send(self, status, body, content_type, headers=None, head=False):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def do_HEAD(self):  # noqa: N802
                self.do_GET(head=True)

            def do_GET(self, head=False):  # noqa: N802
                host.requests.append((self.command, self.path, dict(self.headers)))
                if self.path in host.redirects:
                    code, location = host.redirects[self.path]
                    return self._send(code, b"moved", "text/plain", {"Location": location}, head)
                if self.path in host.feed_paths:
                    return self._feed(head, self.path)
                if self.path == "/missing.mp3":
                    return self._send(404, b"not found", "text/plain", head=head)
                if self.path == "/page.mp3":
                    return self._send(
                        200, b"<!doctype html><html><body>Please log in</body></html>", "text/html", head=head
                    )
                match = re.fullmatch(r"/transcripts/([\w-]+)\.(\w+)", self.path)
                if match and match.group(2) in TRANSCRIPTS:
                    content_type, text = TRANSCRIPTS[match.group(2)]
                    return self._send(200, text.encode(), content_type, head=head)
                match = re.fullmatch(r"/chapters/([\w-]+)\.json", self.path)
                if match:
                    return self._send(
                        200, json.dumps(CHAPTERS).encode(), "application/json+chapters", head=head
                    )
                match = re.fullmatch(r"/audio/([\w.-]+)", self.path)
                if match and host.fail_next.get(match.group(1), 0) > 0:
                    host.fail_next[match.group(1)] -= 1
                    return self._send(503, b"busy", "text/plain", head=head)
                if match and match.group(1) in host.cut_short_next and not head:
                    host.cut_short_next.discard(match.group(1))
                    data = (host.folder / match.group(1)).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Type", "audio/mpeg")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if match and (host.folder / match.group(1)).is_file():
                    data = (host.folder / match.group(1)).read_bytes()
                    wanted = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
                    start = int(wanted.group(1)) if wanted else 0
                    self.send_response(206 if wanted else 200)
                    self.send_header("Content-Type", "audio/mpeg")
                    self.send_header("Accept-Ranges", "bytes")
                    self.send_header("Content-Length", str(len(data) - start))
                    if wanted:
                        self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                    self.end_headers()
                    if head:
                        return
                    slow = host.slow is True or (isinstance(host.slow, set) and match.group(1) in host.slow)
                    step = 4096 if slow else len(data)
                    try:
                        for at in range(start, len(data), step):
                            self.wfile.write(data[at : at + step])
                            if slow:
                                time.sleep(0.05)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # the client went away (a test killed it)
                    return
                self._send(404, b"not found", "text/plain", head=head)

            def _feed(self, head, path):
                mode = host.mode
                if mode == "down":
                    return self._send(503, b"down for maintenance", "text/plain", head=head)
                if mode == "html":
                    return self._send(
                        200,
                        b"<!DOCTYPE html><html><head><title>Moved</title></head><body>hi</body></html>",
                        "text/html",
                        head=head,
                    )
                if mode == "malformed":
                    return self._send(200, host.feed_bytes()[:-40], "application/rss+xml", head=head)
                if mode == "bomb":
                    return self._send(200, BOMB, "application/rss+xml", head=head)
                body = host.feed_bytes(path)
                etag = '"' + hashlib.sha1(body).hexdigest() + '"'
                if self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.send_header("ETag", etag)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self._send(200, body, "application/rss+xml", {"ETag": etag}, head)

        return Handler
