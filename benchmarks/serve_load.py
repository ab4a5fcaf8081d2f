"""`adcut serve` under podcast-app load: feed polls, HEAD, range probes and reads on an ad-free episode.

Sets up a real upstream host on loopback (a generated feed, a ``--minutes`` long MP3 episode and a
long second one), ``adcut feed add`` and ``adcut serve`` as a subprocess, waits until the first episode
is cut, then queues the second and starts the load once it is being processed (decode, model, cut). ``--clients``
concurrent clients (keep-alive connections, like apps) each make ``--requests`` requests in the mix
real apps make: conditional and full feed polls, HEAD on the enclosure, ``Range: bytes=0-1`` probes,
mid-file and open-ended ranges, and now and then the whole file. Every answer is checked (status,
the exact bytes). The baseline, in the same run and with the same clients: a bare static server
(ThreadingHTTPServer, no token, no database, no feed rewrite, the same sendfile path) serving the
same cut MP3 and the upstream XML. Prints requests/s and latency percentiles per kind, and each as a
ratio to the baseline.

    .venv/bin/python benchmarks/serve_load.py --clients 50 --requests 40
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from adcut.demo.synth import EpisodeSpec, write_long_mp3  # noqa: E402
from adcut.serve.handler import Unsatisfiable, parse_range  # noqa: E402
from upstream_feed import UpstreamEpisode, UpstreamHost  # noqa: E402

KINDS = ("feed", "feed-304", "head", "probe", "mid", "tail", "full")
WEIGHTS = (10, 15, 15, 20, 25, 10, 5)


def content_model(path: Path) -> None:
    """An untrained LSTM that always says content (the load does not depend on what is cut)."""
    import torch

    from adcut.features.mfcc import FeatureConfig
    from adcut.models.checkpoint import Checkpoint, save_checkpoint
    from adcut.models.registry import build_model, config_dict

    features = FeatureConfig()
    net = build_model("lstm", {"n_features": features.n_features, "hidden_size": 8, "num_layers": 1})
    state = net.state_dict()
    state["head.weight"] = torch.zeros_like(state["head.weight"])
    state["head.bias"] = torch.tensor([-4.0, 4.0])
    save_checkpoint(path, Checkpoint("lstm", config_dict(net), features, ("ad", "content"), state))


class Static(BaseHTTPRequestHandler):
    """The baseline: the file and the feed XML as they are, no token, no database; Range, TCP_NODELAY and
    sendfile as in the real server."""

    protocol_version = "HTTP/1.1"
    audio: Path
    feed: bytes

    def log_message(self, *args):
        pass

    def setup(self):
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_HEAD(self):  # noqa: N802
        self.do_GET(head=True)

    def do_GET(self, head=False):  # noqa: N802
        if self.path.startswith("/feed"):
            etag = '"feed"'
            if self.headers.get("If-None-Match") == etag:
                self.send_response(304)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("ETag", etag)
            self.send_header("Content-Length", str(len(self.feed)))
            self.end_headers()
            if not head:
                self.wfile.write(self.feed)
            return
        size = self.audio.stat().st_size
        span = parse_range(self.headers.get("Range"), size) if self.headers.get("Range") else None
        if isinstance(span, Unsatisfiable):
            self.send_response(416)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        first, last = span if span else (0, size - 1)
        self.send_response(206 if span else 200)
        self.send_header("Content-Type", "audio/mpeg")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(last - first + 1))
        if span:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        if not head:
            with open(self.audio, "rb") as handle:
                self.connection.sendfile(handle, first, last - first + 1)


class StaticServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # as adcut serve's: the default 5 drops connections when 50 clients connect


def run_load(feed_url: str, audio_url: str, audio: bytes, clients: int, requests: int, seed: int = 0):
    """Latencies per kind, total seconds, and the number of wrong answers."""
    latencies: dict[str, list[float]] = {kind: [] for kind in KINDS}
    errors: list[str] = []
    lock = threading.Lock()
    size = len(audio)
    barrier = threading.Barrier(clients)

    def client(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        parts = urlsplit(feed_url)
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
        feed_etag = None
        mine = {kind: [] for kind in KINDS}
        barrier.wait()
        for _ in range(requests):
            kind = rng.choices(KINDS, WEIGHTS)[0]
            headers, method, url, expect = {}, "GET", audio_url, None
            if kind.startswith("feed"):
                url = feed_url
                if kind == "feed-304" and feed_etag:
                    headers["If-None-Match"] = feed_etag
            elif kind == "head":
                method = "HEAD"
            elif kind == "probe":
                headers["Range"], expect = "bytes=0-1", audio[:2]
            elif kind == "mid":
                start = rng.randrange(0, size - 65536)
                headers["Range"], expect = f"bytes={start}-{start + 65535}", audio[start : start + 65536]
            elif kind == "tail":
                start = rng.randrange(size - 200_000, size)
                headers["Range"], expect = f"bytes={start}-", audio[start:]
            else:
                expect = audio
            path = urlsplit(url)
            target = path.path + (f"?{path.query}" if path.query else "")
            started = time.perf_counter()
            try:
                connection.request(method, target, headers=headers)
                response = connection.getresponse()
                body = response.read()
            except (OSError, http.client.HTTPException) as error:
                with lock:
                    errors.append(f"{kind}: {error}")
                connection.close()
                connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
                continue
            mine[kind].append(time.perf_counter() - started)
            ok = response.status in (200, 206, 304)
            if kind.startswith("feed"):
                feed_etag = response.getheader("ETag") or feed_etag
                ok = ok and (response.status == 304 or body.startswith(b"<?xml"))
            elif kind == "head":
                ok = ok and body == b"" and int(response.getheader("Content-Length")) == size
            else:
                ok = ok and body == expect
            if not ok:
                with lock:
                    errors.append(f"{kind}: status {response.status}, {len(body)} bytes")
        connection.close()
        with lock:
            for kind, values in mine.items():
                latencies[kind].extend(values)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return latencies, time.perf_counter() - started, errors


def percentiles(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return (float("nan"),) * 3
    p = np.percentile(np.array(values) * 1000, [50, 90, 99])
    return float(p[0]), float(p[1]), float(p[2])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=40, help="requests per client")
    parser.add_argument("--minutes", type=float, default=10.0, help="length of the served episode")
    parser.add_argument(
        "--busy-minutes", type=float, default=30.0, help="length of the episode processed while the load runs"
    )
    args = parser.parse_args()
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"), ADCUT_THREADS="1")
    adcut = [sys.executable, "-m", "adcut"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = tmp / "content.safetensors"
        content_model(model)
        episodes = [
            UpstreamEpisode(
                "ep-1",
                "Episode 1",
                "e1.mp3",
                EpisodeSpec(args.minutes * 60, ((60.0, 120.0),)),
                "Mon, 30 Nov 2026 10:00:00 GMT",
            ),
            UpstreamEpisode(
                "ep-2",
                "Episode 2",
                "e2.mp3",
                EpisodeSpec(args.busy_minutes * 60, ((60.0, 120.0),)),
                "Sun, 29 Nov 2026 10:00:00 GMT",
            ),
        ]
        # The episode processed during the load: a long 44.1 kHz stereo MP3, so its decode, model and cut
        # take seconds of CPU while the requests come in.
        (tmp / "upstream").mkdir()
        write_long_mp3(tmp / "upstream" / "e2.mp3", episodes[1].spec)
        upstream = UpstreamHost(tmp / "upstream", episodes).start()
        data = tmp / "data"
        subprocess.run(
            [
                *adcut,
                "feed",
                "add",
                upstream.url,
                "--name",
                "show",
                "--model",
                str(model),
                "--data",
                str(data),
            ],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        from adcut.serve.paths import DataDir
        from adcut.serve.store import Store

        store = Store(DataDir(data).db)
        second = next(e for e in store.episodes() if e.guid == "ep-2")
        with store.transaction() as db:  # only the newest queued; the second is queued when the load starts
            db.execute("DELETE FROM jobs WHERE episode_id = ?", (second.id,))
            db.execute("UPDATE episodes SET state = 'new' WHERE id = ?", (second.id,))
        server = subprocess.Popen(
            [
                *adcut,
                "serve",
                "--port",
                "0",
                "--data",
                str(data),
                "--episodes",
                "1",
                "--refresh-minutes",
                "600",
            ],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            line = server.stdout.readline()
            base, token = re.search(r"(http://\S+)/\?token=(\S+)", line).groups()
            started = time.perf_counter()
            while True:
                first = next(e for e in store.episodes() if e.guid == "ep-1")
                if first.state in ("done", "failed"):
                    break
                time.sleep(0.5)
            assert first.state == "done", first.reason
            print(
                f"episode of {args.minutes:g} min cut and ready after {time.perf_counter() - started:.1f} s; "
                f"{first.audio_size / 1e6:.1f} MB"
            )
            audio_path = DataDir(data).audio / first.audio_name
            audio = audio_path.read_bytes()
            feed_url = f"{base}/feed/show.xml?token={token}"
            audio_url = f"{base}/audio/{first.audio_name}?token={token}"

            Static.audio, Static.feed = audio_path, upstream.feed_bytes()
            static = StaticServer(("127.0.0.1", 0), Static)
            threading.Thread(target=static.serve_forever, daemon=True).start()
            static_base = f"http://127.0.0.1:{static.server_address[1]}"
            results = {}
            # Warm both, then the baseline, then adcut serve while the second episode is being processed.
            run_load(f"{static_base}/feed.xml", f"{static_base}/audio.mp3", audio, 4, 5)
            run_load(feed_url, audio_url, audio, 4, 5)
            results["baseline"] = run_load(
                f"{static_base}/feed.xml", f"{static_base}/audio.mp3", audio, args.clients, args.requests
            )
            store.enqueue(second.id)
            while store.episode(second.id).state != "processing":
                time.sleep(0.02)
            busy_until: list[float] = []

            def watch() -> None:
                watcher = Store(DataDir(data).db)
                while store.episode(second.id).state == "processing":
                    time.sleep(0.05)
                busy_until.append(time.perf_counter())
                watcher.close()

            threading.Thread(target=watch, daemon=True).start()
            load_started = time.perf_counter()
            results["adcut serve"] = run_load(feed_url, audio_url, audio, args.clients, args.requests, seed=1)
            load_ended = time.perf_counter()
            while not busy_until:
                time.sleep(0.05)
            overlap = (min(busy_until[0], load_ended) - load_started) / (load_ended - load_started)
            final = store.episode(second.id)
            static.shutdown()
        finally:
            server.send_signal(signal.SIGINT)
            server.wait(30)
            upstream.stop()
        print(
            f"a {args.busy_minutes:g}-min episode was being processed during {min(overlap, 1.0):.0%} of the "
            f"adcut serve load (then {final.state}{': ' + final.reason if final.reason else ''})"
        )
        print(
            f"{args.clients} concurrent clients x {args.requests} requests, keep-alive; every answer checked\n"
        )
        base_lat, base_seconds, base_errors = results["baseline"]
        base_total = sum(len(v) for v in base_lat.values())
        print(
            "| server | requests | wrong answers | requests/s | ratio | p50 ms | p90 ms | p99 ms | p99 ratio |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for name, (lat, seconds, errors) in results.items():
            total = sum(len(v) for v in lat.values())
            everything = [x for v in lat.values() for x in v]
            p50, p90, p99 = percentiles(everything)
            b99 = percentiles([x for v in base_lat.values() for x in v])[2]
            rate = total / seconds
            print(
                f"| {name} | {total} | {len(errors)} | {rate:.0f} | {rate / (base_total / base_seconds):.2f} | "
                f"{p50:.1f} | {p90:.1f} | {p99:.1f} | {p99 / b99:.2f} |"
            )
        print("\nper kind (adcut serve vs baseline, p50 / p90 ms):\n")
        print("| request | count | adcut p50 | adcut p90 | baseline p50 | baseline p90 | p50 ratio |")
        print("|---|---|---|---|---|---|---|")
        lat = results["adcut serve"][0]
        for kind in KINDS:
            a, b = percentiles(lat[kind]), percentiles(base_lat[kind])
            print(
                f"| {kind} | {len(lat[kind])} | {a[0]:.1f} | {a[1]:.1f} | {b[0]:.1f} | {b[1]:.1f} | {a[0] / b[0]:.2f} |"
            )
        for name, (_, _, errors) in results.items():
            for error in errors[:5]:
                print(f"{name}: wrong answer: {error}")


if __name__ == "__main__":
    main()
