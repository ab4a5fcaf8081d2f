"""``adcut feed`` and ``adcut serve`` end to end: a real upstream host on loopback, real SQLite, the
server as a real subprocess, episodes really downloaded, detected and cut, requests made the way
podcast apps make them (HEAD, ``Range: bytes=0-1`` probes, open-ended and mid-file ranges, full GETs,
conditional feed GETs).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from lxml import etree

from adcut.cli import main
from adcut.demo.synth import EpisodeSpec
from adcut.serve.feed import FeedError, parse_feed, rewrite
from adcut.serve.handler import UNSATISFIABLE, parse_range
from adcut.serve.paths import DataDir
from adcut.serve.refresh import refresh_feed, upstream_copy
from adcut.serve.store import Store
from adcut.serve.worker import original_audio

sys.path.insert(0, str(Path(__file__).parent))
from upstream_feed import CHAPTERS, UpstreamEpisode, UpstreamHost  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src"
NS = {
    "itunes": "http://www.itunes.com/dtds/podcast-1.0.dtd",
    "podcast": "https://podcastindex.org/namespace/1.0",
    "atom": "http://www.w3.org/2005/Atom",
    "content": "http://purl.org/rss/1.0/modules/content/",
}
GOOD = {"ep-1": EpisodeSpec(70.0, ((25.0, 45.0),)), "ep-2": EpisodeSpec(24.0, ())}


def episodes() -> list[UpstreamEpisode]:
    return [
        UpstreamEpisode("ep-1", "Episode 1", "e1.mp3", GOOD["ep-1"], "Mon, 30 Nov 2026 10:00:00 GMT"),
        UpstreamEpisode("ep-2", "Episode 2", "e2.mp3", GOOD["ep-2"], "Sun, 29 Nov 2026 10:00:00 GMT"),
        UpstreamEpisode("ep-3", "Episode 3", "/missing.mp3", None, "Sat, 28 Nov 2026 10:00:00 GMT"),
        UpstreamEpisode("ep-4", "Episode 4", "/page.mp3", None, "Fri, 27 Nov 2026 10:00:00 GMT"),
    ]


def fit_ad_model(folder: Path) -> Path:
    """A one-unit LSTM checkpoint that finds the generated ads, fitted in seconds.

    A logistic regression over the MFCC frames of a few generated episodes (ads have a music bed and
    another spectrum) becomes the LSTM's cell input; the cell is a leaky average over about a second,
    read at the window's last step (hence ``window_anchor`` near 1). Training a real model to this
    accuracy takes far longer than these tests may.
    """
    import numpy as np
    import torch

    from adcut.demo.synth import write_episode
    from adcut.features.episode import episode_features
    from adcut.features.mfcc import FeatureConfig
    from adcut.models.checkpoint import Checkpoint, save_checkpoint
    from adcut.models.registry import build_model, config_dict

    features = FeatureConfig()
    frames, truth = [], []
    for seed in range(4):
        spec = EpisodeSpec(40.0, ((12.0, 28.0),))
        path = folder / f"train{seed}.wav"
        write_episode(path, spec, seed=100 + seed)
        x, _ = episode_features(path, features, workers=1)
        t = (np.arange(len(x)) + 0.5) * features.frame_seconds
        frames.append(x)
        truth.append(np.array([any(a <= s < b for a, b in spec.ads) for s in t], dtype=float))
    x, y = np.concatenate(frames), np.concatenate(truth)
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    w, b = np.zeros(z.shape[1]), 0.0
    for _ in range(300):
        g = 1 / (1 + np.exp(-(z @ w + b))) - y
        w -= 0.5 * (z.T @ g) / len(y)
        b -= 0.5 * g.mean()
    net = build_model("lstm", {"n_features": features.n_features, "hidden_size": 1, "num_layers": 1})
    state = net.state_dict()
    state["norm.mean"], state["norm.std"] = torch.tensor(mean).float(), torch.tensor(std).float()
    w_ih, b_ih = torch.zeros(4, features.n_features), torch.zeros(4)  # gates i, f, g, o
    b_ih[0], b_ih[1], b_ih[3] = 10.0, 3.0, 10.0  # input and output open; forget 0.95: about a second
    w_ih[2], b_ih[2] = torch.tensor(w).float(), float(b)
    state["lstm.weight_ih_l0"], state["lstm.bias_ih_l0"] = w_ih, b_ih
    state["lstm.weight_hh_l0"], state["lstm.bias_hh_l0"] = torch.zeros(4, 1), torch.zeros(4)
    state["head.weight"], state["head.bias"] = torch.tensor([[3.0], [-3.0]]), torch.zeros(2)
    path = folder / "ads.safetensors"
    save_checkpoint(
        path,
        Checkpoint(
            "lstm", config_dict(net), features, ("ad", "content"), state, metrics={"window_anchor": 0.97}
        ),
    )
    return path


@pytest.fixture(scope="session")
def model(tmp_path_factory):
    return fit_ad_model(tmp_path_factory.mktemp("model"))


@pytest.fixture
def upstream(tmp_path):
    host = UpstreamHost(tmp_path / "upstream", episodes()).start()
    yield host
    host.stop()


class Server:
    """``adcut serve`` as a subprocess (its own process group, so a test can kill -9 all of it)."""

    def __init__(self, data: Path, *extra: str):
        env = dict(os.environ, PYTHONPATH=str(SRC), ADCUT_THREADS="1")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "adcut",
                "serve",
                "--port",
                "0",
                "--data",
                str(data),
                "--episodes",
                "10",
                *extra,
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        line = self.process.stdout.readline()
        assert "status page" in line, line + self.process.stderr.read()
        self.status = line.split("status page ")[1].strip()
        self.base, self.token = self.status.split("/?token=")

    def url(self, path: str, token: str | None = None) -> str:
        return f"{self.base}{path}?token={self.token if token is None else token}"

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


def request(url: str, method: str = "GET", headers: dict | None = None):
    """(status, headers, body) of one request; HTTP errors are answers too."""
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, method=method, headers=headers or {}), timeout=30
        ) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def wait_for(check, timeout: float = 90.0, every: float = 0.3):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError("timed out waiting")


def settled(data: Path) -> bool:
    store = Store(DataDir(data).db)
    try:
        states = [e.state for e in store.episodes()]
        return (
            bool(states)
            and all(s in ("done", "failed") for s in states)
            and not any(store.job_state(e.id) in ("queued", "leased") for e in store.episodes())
        )
    finally:
        store.close()


def element_paths(root) -> set[str]:
    """Every element's path of tags (items by GUID), for comparing the upstream and rewritten feeds."""
    paths = set()

    def walk(element, prefix):
        for child in element:
            if not isinstance(child.tag, str):
                continue
            name = child.tag if child.tag != "item" else f"item[{child.findtext('guid')}]"
            paths.add(f"{prefix}/{name}")
            walk(child, f"{prefix}/{name}")

    walk(root, "")
    return paths


def add_feed(upstream, model, data: Path, capsys) -> str:
    assert (
        main(["feed", "add", upstream.url, "--model", str(model), "--data", str(data), "--name", "show"]) == 0
    )
    out = capsys.readouterr().out
    assert "4 episodes" in out and "/feed/show.xml?token=" in out
    return out


def test_feed_is_served_ad_free_as_podcast_apps_expect(upstream, model, tmp_path, capsys):
    import feedparser

    data = tmp_path / "data"
    add_feed(upstream, model, data, capsys)
    server = Server(data)
    try:
        wait_for(lambda: settled(data))
        # The token is required everywhere.
        for path in ("/", "/feed/show.xml"):
            assert request(f"{server.base}{path}")[0] == 403
            assert request(server.url(path, token="wrong"))[0] == 403
        status, headers, body = request(server.url("/feed/show.xml"))
        assert status == 200 and headers["Content-Type"].startswith("application/rss+xml")
        status, head_headers, nothing = request(server.url("/feed/show.xml"), "HEAD")  # apps' HEAD on refresh
        assert status == 200 and nothing == b"" and int(head_headers["Content-Length"]) == len(body)

        # Parses with lxml and feedparser; every upstream element is still there except the rewritten ones.
        new = etree.fromstring(body)
        old = etree.fromstring(upstream.feed_bytes())
        parsed = feedparser.parse(body)
        assert not parsed.bozo and parsed.feed.title == "Example Show (ad-free)"
        assert [e.id for e in parsed.entries] == [
            "ep-1",
            "ep-2",
        ]  # the GUIDs, unchanged; failed ones left out
        dropped = {f"/channel/{{{NS['itunes']}}}new-feed-url", f"/channel/{{{NS['podcast']}}}guid"}
        for guid in ("ep-3", "ep-4"):
            dropped |= {p for p in element_paths(old) if f"item[{guid}]" in p}
        for guid in ("ep-1", "ep-2"):
            dropped |= {
                f"/channel/item[{guid}]/{{{NS['podcast']}}}{tag}" for tag in ("transcript", "soundbite")
            }
        assert element_paths(old) - dropped <= element_paths(new)
        assert new.find("channel/itunes:owner/itunes:email", NS).text == "ann@example.org"
        assert new.find("channel/item/content:encoded", NS).text.startswith("<p>Show notes")
        # Nothing maps the proxy back to the original feed.
        assert (
            new.find("channel/itunes:new-feed-url", NS) is None
            and new.find("channel/podcast:guid", NS) is None
        )
        assert new.find("channel/atom:link[@rel='self']", NS).get("href") == server.url("/feed/show.xml")

        # Each enclosure: the proxy's URL with the token; length = Content-Length = the file's size.
        audio_dir = DataDir(data).audio
        for item in new.iterfind("channel/item"):
            enclosure = item.find("enclosure")
            url = enclosure.get("url")
            assert url.startswith(f"{server.base}/audio/") and url.endswith(f"?token={server.token}")
            size = (audio_dir / url.split("/audio/")[1].split("?")[0]).stat().st_size
            status, headers, body = request(url, "HEAD")
            assert status == 200 and body == b"" and headers["Accept-Ranges"] == "bytes"
            assert int(enclosure.get("length")) == int(headers["Content-Length"]) == size
            assert enclosure.get("type") == headers["Content-Type"] == "audio/mpeg"
            chapters_url = item.find("podcast:chapters", NS).get("url")
            status, headers, body = request(chapters_url)
            assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
            # The episode's own chapters, moved to the cut's timeline, every field kept.
            chapters = json.loads(body)
            assert chapters["author"] == "Ann Example"
            titles = [c["title"] for c in chapters["chapters"]]
            if (
                item.findtext("guid") == "ep-1"
            ):  # the sponsor chapter was the ad; the main part now follows the intro
                assert titles == ["Intro", "Main part"]
                assert chapters["chapters"][1]["startTime"] == pytest.approx(25.0, abs=0.5)
                assert chapters["chapters"][1]["url"] == CHAPTERS["chapters"][2]["url"]
            else:  # 24 s long: only the intro lies inside it
                assert titles == ["Intro"]
            # Its transcripts with times, moved to the cut's timeline like the chapters (HTML has none: not served).
            transcripts = {t.get("type"): t for t in item.findall("podcast:transcript", NS)}
            assert sorted(transcripts) == ["application/json", "application/x-subrip", "text/vtt"]
            assert transcripts["text/vtt"].get("language") == "en"  # upstream's attributes kept
            assert transcripts["application/json"].get("rel") == "captions"
            texts = {}
            for kind, element in transcripts.items():
                assert element.get("url").startswith(f"{server.base}/transcripts/")
                assert request(element.get("url").split("?")[0])[0] == 403
                status, headers, body = request(element.get("url"))
                assert status == 200 and headers["Content-Type"].startswith(kind)
                assert headers["Access-Control-Allow-Origin"] == "*"
                texts[kind] = body.decode()
            cues = json.loads(texts["application/json"])["segments"]
            assert "Acme" not in texts["text/vtt"] + texts["application/x-subrip"] + texts["application/json"]
            assert (
                texts["text/vtt"].startswith("WEBVTT")
                and "cue-0\n00:00:05.000 --> 00:00:08.000\n" in texts["text/vtt"]
            )
            assert "1\n00:00:05,000 --> 00:00:08,000\nWelcome to the show." in texts["application/x-subrip"]
            if item.findtext("guid") == "ep-1":  # the cue inside the ad is gone; the one after it moved up
                assert [c["body"] for c in cues] == ["Welcome to the show.", "Back to the main part."]
                assert cues[1]["startTime"] == pytest.approx(30.0, abs=0.5)
                assert cues[1]["endTime"] - cues[1]["startTime"] == pytest.approx(3.5, abs=0.01)
                assert (
                    "cue-2\n00:00:3" in texts["text/vtt"]
                    and "<v Ann>Back to the main part." in texts["text/vtt"]
                )
                assert "\n\n2\n00:00:3" in texts["application/x-subrip"]  # renumbered
            else:  # 24 s long: only the first cue lies inside it
                assert [c["body"] for c in cues] == ["Welcome to the show."]

        # Range requests as apps make them.
        url = new.find("channel/item/enclosure").get("url")
        whole = request(url)[2]
        assert whole == (audio_dir / url.split("/audio/")[1].split("?")[0]).read_bytes()
        size = len(whole)
        for header, first, last in (
            ("bytes=0-1", 0, 1),
            ("bytes=1000-", 1000, size - 1),
            ("bytes=2000-2999", 2000, 2999),
            ("bytes=-100", size - 100, size - 1),
            (f"bytes=100-{size + 50}", 100, size - 1),
        ):
            status, headers, body = request(url, headers={"Range": header})
            assert status == 206, header
            assert body == whole[first : last + 1]
            assert headers["Content-Range"] == f"bytes {first}-{last}/{size}"
        status, headers, _ = request(url, headers={"Range": f"bytes={size}-"})
        assert status == 416 and headers["Content-Range"] == f"bytes */{size}"

        # The served audio decodes and is the kept time long.
        from adcut.media.decode import decode_original, probe

        saved = tmp_path / "served.mp3"
        saved.write_bytes(whole)
        info, samples = decode_original(saved)
        episode = next(e for e in Store(DataDir(data).db).episodes() if e.guid == "ep-1")
        assert episode.removed == pytest.approx(20.0, abs=1.0)  # the ad, 25-45 s
        kept = samples.shape[1] / info.sample_rate
        assert kept == pytest.approx(GOOD["ep-1"].duration - episode.removed, abs=0.1)
        assert kept == pytest.approx(episode.duration, abs=0.1)
        assert new.find("channel/item/itunes:duration", NS).text == "0:00:50"
        assert probe(saved).codec.startswith("mp3")

        # A conditional feed GET: 304 when nothing changed.
        etag = request(server.url("/feed/show.xml"))[1]["ETag"]
        assert request(server.url("/feed/show.xml"), headers={"If-None-Match": etag})[0] == 304

        # Broken episodes are reported with their reason; the others finished.
        page = request(server.url("/"))[2].decode()
        assert "404" in page and "not audio" in page
        assert main(["feed", "list", "--json", "--data", str(data)]) == 0
        listed = json.loads(capsys.readouterr().out)
        assert listed[0]["processed"] == 2 and listed[0]["failed"] == 2 and listed[0]["queued"] == 0

        # Upstream down, or a web page instead of the feed: the last good copy is still served, the page says why.
        for mode in ("down", "html"):
            upstream.mode = mode
            assert main(["feed", "refresh", "show", "--data", str(data)]) == 1
            capsys.readouterr()
            status, _, body = request(server.url("/feed/show.xml"))
            assert status == 200 and [e.id for e in feedparser.parse(body).entries] == ["ep-1", "ep-2"]
            assert "Last refresh failed" in request(server.url("/"))[2].decode()
        upstream.mode = "ok"

        # No request path reaches the filesystem.
        for path in (
            "/audio/..%2fadcut-serve.sqlite3",
            "/audio/../adcut-serve.sqlite3",
            "/feed/..%2f..%2fx.xml",
            "/chapters/%2e%2e.json",
        ):
            assert request(server.url(path))[0] == 404, path
    finally:
        assert server.stop() == 0


def test_recut_keeps_the_guid_and_gives_a_new_file_name(upstream, model, tmp_path, capsys):
    data = tmp_path / "data"
    add_feed(upstream, model, data, capsys)
    upstream.slow = {"e1.mp3"}  # its download takes seconds: the requests below meet it under way
    server = Server(data, "--workers", "2")
    try:
        store = Store(DataDir(data).db)
        by_guid = wait_for(
            lambda: (lambda e: e["ep-2"].state == "done" and e)({e.guid: e for e in store.episodes()})
        )
        # 50 apps at once read the episode that is ready while the other one is being downloaded and cut.
        ready = etree.fromstring(request(server.url("/feed/show.xml"))[2])
        other = ready.find("channel/item/enclosure").get("url")
        whole = request(other)[2]
        spans = [(n * 997 % (len(whole) - 5000), n * 997 % (len(whole) - 5000) + 4999) for n in range(50)]
        answers: list = [None] * 50

        def read(n):
            answers[n] = request(other, headers={"Range": f"bytes={spans[n][0]}-{spans[n][1]}"})

        threads = [threading.Thread(target=read, args=(n,)) for n in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert store.episode(by_guid["ep-1"].id).state in ("downloading", "processing")
        for n, (status, _, body) in enumerate(answers):
            assert status == 206 and body == whole[spans[n][0] : spans[n][1] + 1]
        upstream.slow = False
        wait_for(lambda: settled(data))

        before = etree.fromstring(request(server.url("/feed/show.xml"))[2])
        first = {i.findtext("guid"): i.find("enclosure").get("url") for i in before.iterfind("channel/item")}
        episode = by_guid["ep-1"]
        status, _, _ = request(server.url(f"/recut/{episode.id}"), "POST")
        assert status == 200  # the 303 to the status page, followed
        wait_for(lambda: Store(DataDir(data).db).episode(episode.id).revision == 2 and settled(data))
        after = etree.fromstring(request(server.url("/feed/show.xml"))[2])
        second = {i.findtext("guid"): i.find("enclosure").get("url") for i in after.iterfind("channel/item")}
        assert sorted(second) == sorted(first) == ["ep-1", "ep-2"]
        assert second["ep-1"] != first["ep-1"] and second["ep-2"] == first["ep-2"]
        assert request(first["ep-1"])[0] == 404 and request(second["ep-1"])[0] == 200
        # The old cut's transcripts went with it; the new one has its own.
        old_transcripts = [
            t.get("url")
            for t in before.iterfind("channel/item/podcast:transcript", NS)
            if "-r1-" in t.get("url")
            and t.get("url")
            .split("/transcripts/")[1]
            .startswith(first["ep-1"].split("/audio/")[1].split("?")[0])
        ]
        assert len(old_transcripts) == 3 and all(request(url)[0] == 404 for url in old_transcripts)
        assert all(
            request(t.get("url"))[0] == 200 for t in after.iterfind("channel/item/podcast:transcript", NS)
        )
    finally:
        server.stop()


def test_review_in_the_labeller_then_recut_from_the_corrected_labels(upstream, model, tmp_path, capsys):
    data = tmp_path / "data"
    add_feed(upstream, model, data, capsys)
    server = Server(data)
    try:
        wait_for(lambda: settled(data))
        episode = next(e for e in Store(DataDir(data).db).episodes() if e.guid == "ep-1")
        assert "review" in request(server.url("/"))[2].decode()
        assert request(f"{server.base}/review/{episode.id}", "POST")[0] == 403
        # The status page's review button opens the labeller on the kept original, pre-filled with the detection.
        with urllib.request.urlopen(
            urllib.request.Request(server.url(f"/review/{episode.id}"), method="POST"), timeout=30
        ) as response:
            labeller = response.geturl()
            assert response.status == 200 and b"<html" in response.read().lower()
        base, token = labeller.split("/?token=")
        assert base.startswith("http://127.0.0.1:") and base != server.base
        found = json.loads(request(f"{base}/api/episode?token={token}")[2])["segments"]
        ads = [s for s in found if s["label"] == "ad"]
        assert len(ads) == 1 and abs(ads[0]["start"] - 25) < 1 and abs(ads[0]["end"] - 45) < 1
        # The reviewer marks a second ad the model missed, and saves.
        corrected = json.dumps(
            {
                "segments": [
                    {"label": "ad", "start": 25.0, "end": 45.0},
                    {"label": "ad", "start": 55.0, "end": 65.0},
                ]
            }
        ).encode()
        status, _, body = _put(f"{base}/api/labels?token={token}", corrected)
        assert status == 200, body
        assert "cut from your reviewed labels" in request(server.url("/"))[2].decode()
        # Re-cut: from the labels, not the model; same GUID, new file, the kept time long.
        assert request(server.url(f"/recut/{episode.id}"), "POST")[0] == 200
        wait_for(lambda: Store(DataDir(data).db).episode(episode.id).revision == 2 and settled(data))
        done = Store(DataDir(data).db).episode(episode.id)
        assert done.removed == pytest.approx(30.0, abs=0.1) and done.duration == pytest.approx(40.0, abs=0.1)
        items = etree.fromstring(request(server.url("/feed/show.xml"))[2]).findall("channel/item")
        assert sorted(i.findtext("guid") for i in items) == ["ep-1", "ep-2"]
        assert len(request(server.url(f"/audio/{done.audio_name}"))[2]) == done.audio_size
        assert len(upstream.requests_for("/audio/e1.mp3")) == 1  # the re-cut used the kept original
    finally:
        assert server.stop() == 0


def _put(url: str, body: bytes):
    request_ = urllib.request.Request(
        url, data=body, method="PUT", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request_, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def test_leases_of_dead_workers_are_taken_again(tmp_path):
    from adcut.serve.store import MAX_ATTEMPTS
    from adcut.serve.worker import reclaim_dead_owners

    store = Store(tmp_path / "q.sqlite3")
    feed = store.add_feed("f", "http://127.0.0.1/feed.xml", None)
    store.upsert_episodes(feed.id, [{"guid": f"g{i}", "url": f"http://127.0.0.1/{i}.mp3"} for i in range(2)])
    first, second = store.episodes(feed.id)
    assert store.enqueue(first.id) and store.enqueue(second.id) and not store.enqueue(first.id)
    # A worker of a process that no longer exists holds a lease far into the future.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    import socket

    job = store.lease(f"{socket.gethostname()}:{dead.pid}:x", seconds=3600)
    assert job.episode_id == first.id
    assert store.lease("live", seconds=3600).episode_id == second.id
    assert store.lease("other") is None
    assert reclaim_dead_owners(store) == 1
    again = store.lease("other", seconds=-1)  # taken again; this lease runs out at once
    assert again.episode_id == first.id and again.attempts == 2
    for _ in range(MAX_ATTEMPTS - 2):
        assert store.lease("other", seconds=-1).episode_id == first.id
    assert store.lease("other") is None  # given up: failed with the reason
    assert store.episode(first.id).state == "failed" and "gave up" in store.episode(first.id).reason


@pytest.mark.parametrize(
    "mode, reason",
    [("down", "503"), ("html", "web page"), ("malformed", "not well-formed"), ("bomb", "DOCTYPE")],
)
def test_upstream_faults_keep_the_last_good_copy(mode, reason, upstream, model, tmp_path, capsys):
    data = tmp_path / "data"
    add_feed(upstream, model, data, capsys)
    dirs = DataDir(data)
    store = Store(dirs.db)
    feed = store.feed("show")
    good = upstream_copy(dirs, feed).read_bytes()
    upstream.mode = mode
    result = refresh_feed(store, dirs, store.feed("show"))
    assert reason in result.error
    assert upstream_copy(dirs, feed).read_bytes() == good
    assert reason in store.feed("show").fetch_error
    pending = etree.fromstring(rewrite(good, feed_url="http://x/feed", ready={}, list_pending=True))
    assert pending.findtext("channel/title") == "Example Show (ad-free)"
    assert [e.get("url") for e in pending.iterfind("channel/item/enclosure")] == [
        f"{upstream.base}/audio/e1.mp3",
        f"{upstream.base}/audio/e2.mp3",
        f"{upstream.base}/missing.mp3",
        f"{upstream.base}/page.mp3",
    ]  # --list-pending: not processed yet, so the original audio
    assert rewrite(good, feed_url="http://x/feed", ready={}).count(b"<item>") == 0
    # The command says it once, and a feed like that cannot be added at all.
    assert main(["feed", "refresh", "show", "--data", str(data)]) == 1
    assert reason in capsys.readouterr().out
    assert main(["feed", "add", upstream.url, "--model", str(model), "--data", str(tmp_path / "other")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("adcut: error:") and reason in err[0]


def test_conditional_get_and_hostile_documents():
    with pytest.raises(FeedError, match="DOCTYPE"):
        parse_feed(b'<?xml version="1.0"?><!DOCTYPE rss SYSTEM "file:///etc/passwd"><rss><channel/></rss>')
    with pytest.raises(FeedError, match="not an RSS"):
        parse_feed(b'<feed xmlns="http://www.w3.org/2005/Atom"></feed>')
    assert parse_range("bytes=0-1", 10) == (0, 1)
    assert parse_range("bytes=-3", 10) == (7, 9)
    assert parse_range("bytes=5-", 10) == (5, 9)
    assert parse_range("bytes=10-", 10) is UNSATISFIABLE
    assert parse_range("bytes=-0", 10) is UNSATISFIABLE
    assert parse_range("bytes=0-1,4-5", 10) is None


def test_feed_add_refuses_non_http_urls(model, tmp_path, capsys):
    assert (
        main(["feed", "add", "file:///etc/passwd", "--model", str(model), "--data", str(tmp_path / "d")]) == 1
    )
    assert "only http:// and https://" in capsys.readouterr().err


def test_serve_on_another_address_needs_a_public_url(tmp_path, capsys):
    assert main(["serve", "--host", "0.0.0.0", "--data", str(tmp_path / "d")]) == 1
    assert "--public-url" in capsys.readouterr().err


def test_chapters_move_to_the_cut_timeline():
    from adcut.core.segments import Segment
    from adcut.serve.worker import chapters_of_cut

    segments = [Segment(0.0, 25.0, "content"), Segment(25.0, 45.0, "ad"), Segment(45.0, 70.0, "content")]
    moved = chapters_of_cut(segments, ("ad",), 70.0, CHAPTERS)
    assert moved["author"] == "Ann Example"
    assert moved["chapters"] == [
        {"startTime": 0.0, "title": "Intro"},
        {**CHAPTERS["chapters"][2], "startTime": 25.0},
    ]  # the sponsor chapter was the ad
    parts = chapters_of_cut(segments, ("ad",), 70.0, None)["chapters"]
    assert parts == [{"startTime": 0.0, "title": "Part 1"}, {"startTime": 25.0, "title": "Part 2"}]


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB filesystem (tmpfs) for the data folder; skipped where mounting is not allowed."""
    folder = tmp_path / "small"
    folder.mkdir()
    if (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(folder)], capture_output=True
        ).returncode
        != 0
    ):
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_data_disk_is_one_clear_reason_and_corrupts_nothing(
    upstream, model, small_disk, tmp_path, capsys
):
    import sqlite3

    from adcut.demo.synth import write_episode

    # The first episode is bigger than the disk's free space.
    big = upstream.folder / "e1.mp3"
    write_episode(big, EpisodeSpec(300.0, ()), seed=3, bit_rate=64000)
    upstream.sizes["e1.mp3"] = big.stat().st_size
    data = small_disk / "data"
    add_feed(upstream, model, data, capsys)
    server = Server(data)
    try:
        wait_for(lambda: settled(data))
        store = Store(DataDir(data).db)
        by_guid = {e.guid: e for e in store.episodes()}
        assert by_guid["ep-1"].state == "failed" and "no space left" in by_guid["ep-1"].reason
        assert by_guid["ep-2"].state == "done"  # the others go on
        items = etree.fromstring(request(server.url("/feed/show.xml"))[2]).findall("channel/item")
        assert [i.findtext("guid") for i in items] == ["ep-2"]
        assert "no space left" in request(server.url("/"))[2].decode()
        check = sqlite3.connect(DataDir(data).db).execute("PRAGMA integrity_check").fetchone()
        assert check == ("ok",)
        assert not list(DataDir(data).downloads.glob("*/*.part"))  # no partial download left taking the space
        assert original_audio(DataDir(data), by_guid["ep-1"].id) is None
        assert not [p for p in DataDir(data).audio.iterdir() if p.name.startswith(".")]
    finally:
        assert server.stop() == 0


def test_feed_commands_add_list_set_model_refresh_remove(
    upstream, model, random_checkpoint, tmp_path, capsys
):
    data = tmp_path / "data"
    out = add_feed(upstream, model, data, capsys)
    assert "the newest 3 queued" in out
    assert main(["feed", "list", "--data", str(data)]) == 0
    listed = capsys.readouterr().out
    assert "show: 0 processed, 3 queued, 0 failed" in listed and upstream.url in listed
    # The model is kept by content hash: retraining the file in ./models changes nothing until set-model.
    stored = json.loads(_run_json(data, capsys))[0]["model"]
    assert Path(stored).parent == DataDir(data).models and Path(stored).read_bytes() == model.read_bytes()
    other = random_checkpoint("other.safetensors", hidden_size=8, num_layers=1)
    assert main(["feed", "set-model", "show", str(other), "--recut", "--data", str(data)]) == 0
    assert "0 episodes queued to be re-cut" in capsys.readouterr().out
    changed = json.loads(_run_json(data, capsys))[0]["model"]
    assert changed != stored and Path(changed).read_bytes() == other.read_bytes()
    # Older episodes on request.
    assert main(["feed", "refresh", "show", "--episodes", "4", "--data", str(data)]) == 0
    assert "1 newly queued" in capsys.readouterr().out
    assert main(["feed", "remove", "show", "--data", str(data)]) == 0
    capsys.readouterr()
    assert json.loads(_run_json(data, capsys)) == []
    assert not list(DataDir(data).feeds.iterdir())
    assert main(["feed", "remove", "show", "--data", str(data)]) == 1
    assert "no feed named 'show'" in capsys.readouterr().err


def _run_json(data: Path, capsys) -> str:
    assert main(["feed", "list", "--json", "--data", str(data)]) == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("how", ["ctrl-c", "kill -9"])
def test_stopped_server_leaves_nothing_half_written_and_resumes(how, upstream, model, tmp_path, capsys):
    data = tmp_path / "data"
    add_feed(upstream, model, data, capsys)
    upstream.slow = {"e1.mp3"}
    server = Server(data)
    store = Store(DataDir(data).db)
    part = DataDir(data).downloads / "1" / "episode.mp3.part"
    wait_for(lambda: part.exists() and part.stat().st_size > 20000, every=0.05)
    if how == "ctrl-c":
        assert server.stop() == 0
        # The job was given back, not left leased: the next start takes it at once.
        assert store.job_state(1) == "queued" and store.episode(1).state == "queued"
    else:
        server.kill()
    assert not [p for p in DataDir(data).audio.iterdir()]  # nothing under a final name
    upstream.slow = False
    server = Server(data)
    try:
        wait_for(lambda: settled(data))
        assert store.episode(1).state == "done" and store.episode(1).revision == 1
        # The download was resumed where it broke off, not started over.
        ranges = [h.get("Range") for h in upstream.requests_for("/audio/e1.mp3")]
        assert ranges[0] is None and ranges[-1].startswith("bytes=")
        items = etree.fromstring(request(server.url("/feed/show.xml"))[2]).findall("channel/item")
        assert sorted(i.findtext("guid") for i in items) == ["ep-1", "ep-2"]  # no duplicate
        for item in items:
            assert len(request(item.find("enclosure").get("url"))[2]) == int(
                item.find("enclosure").get("length")
            )
        assert not list(DataDir(data).audio.glob(".*")) and not list(DataDir(data).downloads.glob("*/*.part"))
        assert not list(DataDir(data).downloads.glob("*/.*.tmp"))
    finally:
        assert server.stop() == 0


def test_a_killed_worker_process_does_not_lose_its_episode(upstream, model, tmp_path, capsys):
    data = tmp_path / "data"
    add_feed(upstream, model, data, capsys)
    upstream.slow = {"e1.mp3"}
    server = Server(data)
    try:
        part = DataDir(data).downloads / "1" / "episode.mp3.part"
        wait_for(lambda: part.exists() and part.stat().st_size > 20000, every=0.05)
        children = subprocess.run(
            ["pgrep", "-P", str(server.process.pid)], capture_output=True, text=True
        ).stdout.split()
        workers = [int(pid) for pid in children if "spawn_main" in Path(f"/proc/{pid}/cmdline").read_text()]
        assert len(workers) == 1
        os.kill(workers[0], signal.SIGKILL)  # the out-of-memory killer, say
        upstream.slow = False
        wait_for(lambda: settled(data))
        store = Store(DataDir(data).db)
        assert [e.state for e in store.episodes()][:2] == ["done", "done"]
        assert store.query("SELECT attempts FROM jobs WHERE episode_id = 1")[0]["attempts"] == 2
    finally:
        assert server.stop() == 0


def test_downloads_retry_with_backoff_and_resume_a_broken_transfer(upstream, tmp_path):
    from adcut.serve.fetch import FetchError, download

    url = f"{upstream.base}/audio/e1.mp3"
    whole = (upstream.folder / "e1.mp3").read_bytes()
    # Two 503s, then the file: retried with growing pauses.
    upstream.fail_next["e1.mp3"] = 2
    started = time.monotonic()
    assert download(url, tmp_path / "a.mp3", backoff=0.2) == "audio/mpeg"
    assert time.monotonic() - started >= 0.2 + 0.4
    assert (tmp_path / "a.mp3").read_bytes() == whole
    # The connection drops halfway: the next attempt asks for the rest only.
    upstream.requests.clear()
    upstream.cut_short_next.add("e1.mp3")
    download(url, tmp_path / "b.mp3", backoff=0.01)
    assert (tmp_path / "b.mp3").read_bytes() == whole
    ranges = [h.get("Range") for h in upstream.requests_for("/audio/e1.mp3")]
    assert ranges == [None, f"bytes={len(whole) // 2}-"]
    assert not list(tmp_path.glob("*.part"))
    # Gone (404) is not retried; a web page is not audio; too big is refused; all leave nothing behind.
    upstream.requests.clear()
    with pytest.raises(FetchError, match="404"):
        download(f"{upstream.base}/missing.mp3", tmp_path / "c.mp3", backoff=0.01)
    assert len(upstream.requests) == 1
    with pytest.raises(FetchError, match="not audio"):
        download(f"{upstream.base}/page.mp3", tmp_path / "d.mp3", backoff=0.01)
    with pytest.raises(FetchError, match="cap"):
        download(url, tmp_path / "e.mp3", max_bytes=1000, backoff=0.01)
    assert not list(tmp_path.glob("[cde].mp3*"))


def test_refresh_asks_upstream_conditionally(upstream, model, tmp_path, capsys):
    data = tmp_path / "data"
    add_feed(upstream, model, data, capsys)
    dirs = DataDir(data)
    store = Store(dirs.db)
    result = refresh_feed(store, dirs, store.feed("show"))
    assert not result.changed and result.error is None  # 304: nothing to do
    assert upstream.requests_for("/feed.xml")[-1]["If-None-Match"] == store.feed("show").etag
    upstream.episodes[0] = UpstreamEpisode(
        "ep-1", "Episode 1 (corrected title)", "e1.mp3", GOOD["ep-1"], "Mon, 30 Nov 2026 10:00:00 GMT"
    )
    assert refresh_feed(store, dirs, store.feed("show")).changed
    assert store.episodes()[0].title == "Episode 1 (corrected title)" and store.episodes()[0].guid == "ep-1"
    assert len(store.episodes()) == 4  # the same GUID is the same episode


def test_only_the_newest_episodes_are_kept_with_keep(upstream, model, tmp_path, capsys):
    from adcut.serve.refresh import prune
    from adcut.serve.worker import process_episode

    data = tmp_path / "data"
    add_feed(upstream, model, data, capsys)
    dirs = DataDir(data)
    store = Store(dirs.db)
    feed = store.feed("show")
    first, second = store.episodes(feed.id)[:2]
    for episode in (first, second):  # what a worker process does, here in this one
        store.finish_episode(episode.id, **process_episode(str(data), episode.id, feed.model, "test"))
    second = store.episode(second.id)
    assert (dirs.audio / second.audio_name).exists() and original_audio(dirs, second.id)
    assert prune(store, dirs, feed, keep=0) == 0
    assert prune(store, dirs, feed, keep=1) == 1  # episodes 3 and 4 have jobs waiting: left alone
    assert not (dirs.audio / second.audio_name).exists() and original_audio(dirs, second.id) is None
    assert store.episode(second.id).state == "new" and store.job_state(second.id) is None
    assert (dirs.audio / store.episode(first.id).audio_name).exists()
    ready = {e.guid for e in store.episodes(feed.id) if e.audio_name}
    assert ready == {"ep-1"}
    assert main(["serve", "--keep", "2", "--episodes", "3", "--data", str(data)]) == 1
    assert "--keep 2 is less than --episodes 3" in capsys.readouterr().err


def test_list_pending_original_or_wait_for_the_ad_free_url(upstream, model, tmp_path, capsys):
    """``--list-pending`` (original): the original enclosure; ``--list-pending=wait``: the ad-free URL,
    503 + Retry-After (GET and HEAD, no body) until the cut is ready, then the audio."""
    import feedparser

    data = tmp_path / "data"
    add_feed(upstream, model, data, capsys)
    upstream.slow = {"e1.mp3"}  # ep-1 downloads for seconds; ep-2 waits in the queue behind it
    store = Store(DataDir(data).db)

    def items(server):
        body = request(server.url("/feed/show.xml"))[2]
        assert not feedparser.parse(body).bozo
        return {i.findtext("guid"): i for i in etree.fromstring(body).iterfind("channel/item")}

    server = Server(data, "--list-pending")
    try:
        listed = items(server)
        assert sorted(listed) == [
            "ep-1",
            "ep-2",
            "ep-3",
            "ep-4",
        ]  # none is ready: all with the original audio
        assert listed["ep-1"].find("enclosure").get("url") == f"{upstream.base}/audio/e1.mp3"
    finally:
        assert server.stop() == 0

    server = Server(data, "--list-pending=wait")
    try:
        listed = items(server)
        assert store.episode(2).state == "queued"  # behind ep-1's slow download
        coming = listed["ep-2"]
        url = coming.find("enclosure").get("url")
        assert url == server.url("/audio/1-2.mp3")
        assert (
            coming.find("enclosure").get("length") == "0"
            and coming.find("enclosure").get("type") == "audio/mpeg"
        )
        for tag in ("itunes:duration", "podcast:transcript", "podcast:chapters", "podcast:soundbite"):
            assert coming.find(tag, NS) is None, tag  # upstream's describe the audio with the ads
        assert coming.find("podcast:person", NS) is not None  # the rest is kept
        for method in ("GET", "HEAD"):
            status, headers, body = request(url, method)
            assert status == 503 and int(headers["Retry-After"]) > 0, method
            assert body == b"" and headers["Content-Length"] == "0" and "Content-Type" not in headers
        assert store.episode(2).state == "queued"  # HEAD and GET started nothing new
        assert (
            request(server.url("/audio/1-99.mp3"))[0] == 404
            and request(server.url("/audio/2-2.mp3"))[0] == 404
        )
        upstream.slow = False
        wait_for(lambda: settled(data))

        listed = items(server)
        assert sorted(listed) == ["ep-1", "ep-2"]  # ep-3 (404) and ep-4 (not audio) failed: left out
        status, headers, audio = request(url)  # the URL an app took while it was pending: now the cut
        ready_url = listed["ep-2"].find("enclosure").get("url")
        assert ready_url != url and "-r1-" in ready_url
        assert status == 200 and headers["Content-Type"] == "audio/mpeg" and audio == request(ready_url)[2]
        assert (
            int(headers["Content-Length"])
            == len(audio)
            == int(listed["ep-2"].find("enclosure").get("length"))
        )
        status, headers, probe = request(url, headers={"Range": "bytes=0-1"})
        assert status == 206 and probe == audio[:2]
        failed = store.episodes()[2]
        assert failed.state == "failed" and request(server.url(f"/audio/1-{failed.id}.mp3"))[0] == 404
    finally:
        assert server.stop() == 0


def test_a_feed_that_moved_for_good_is_followed_and_a_temporary_move_is_not(
    upstream, model, tmp_path, capsys
):
    data = tmp_path / "data"
    dirs = DataDir(data)
    base = upstream.base
    upstream.feed_paths |= {"/b.xml", "/new.xml"}
    upstream.redirects.update(
        {
            "/old.xml": (301, "/feed.xml"),
            "/perm.xml": (308, f"{base}/b.xml"),
            "/temp.xml": (302, "/feed.xml"),
            "/temp7.xml": (307, "/feed.xml"),
            "/chain.xml": (308, "/hop.xml"),
            "/hop.xml": (302, "/feed.xml"),
            "/gone.xml": (301, "/missing.mp3"),
        }
    )
    assert (
        main(["feed", "add", f"{base}/old.xml", "--model", str(model), "--data", str(data), "--name", "show"])
        == 0
    )
    assert f"moved permanently: following {base}/feed.xml" in capsys.readouterr().out
    store = Store(dirs.db)
    assert store.feed("show").url == f"{base}/feed.xml"
    assert (
        main(["feed", "add", f"{base}/old.xml", "--data", str(data), "--model", str(model)]) == 1
    )  # the same feed
    assert "added already" in capsys.readouterr().err
    for start, stored in (
        ("/perm.xml", "/b.xml"),
        ("/temp.xml", "/temp.xml"),
        ("/temp7.xml", "/temp7.xml"),
        ("/chain.xml", "/hop.xml"),
    ):  # the permanent hops up to the first temporary one
        store.set_feed_url(store.feed("show").id, base + start)
        result = refresh_feed(store, dirs, store.feed("show"))
        assert result.error is None and store.feed("show").url == base + stored, start
        assert result.moved == (None if start == stored else base + stored)
    # A permanent redirect to something that is not a feed is not followed: the last good copy stays.
    store.set_feed_url(store.feed("show").id, f"{base}/gone.xml")
    assert "404" in refresh_feed(store, dirs, store.feed("show")).error
    assert store.feed("show").url == f"{base}/gone.xml" and upstream_copy(dirs, store.feed("show")).exists()

    # itunes:new-feed-url: followed once the new address answers with a feed.
    store.set_feed_url(store.feed("show").id, f"{base}/feed.xml")
    upstream.new_feed_url["/feed.xml"] = f"{base}/nowhere.xml"  # a 404: stay
    result = refresh_feed(store, dirs, store.feed("show"))
    assert result.error is None and result.moved is None and store.feed("show").url == f"{base}/feed.xml"
    upstream.new_feed_url["/feed.xml"] = "file:///etc/passwd"  # not http(s): stay
    assert refresh_feed(store, dirs, store.feed("show")).moved is None
    upstream.new_feed_url = {"/feed.xml": f"{base}/new.xml", "/new.xml": f"{base}/new.xml"}
    upstream.requests.clear()
    result = refresh_feed(store, dirs, store.feed("show"))
    assert result.moved == f"{base}/new.xml" and store.feed("show").url == f"{base}/new.xml"
    assert refresh_feed(store, dirs, store.feed("show")).moved is None  # it names itself: settled
    assert len(upstream.requests_for("/new.xml")) == 2 and len(upstream.requests_for("/feed.xml")) == 1
    assert [e.guid for e in store.episodes()] == ["ep-1", "ep-2", "ep-3", "ep-4"]  # the same episodes
    assert main(["feed", "list", "--data", str(data)]) == 0
    assert f"upstream: {base}/new.xml" in capsys.readouterr().out
    upstream.new_feed_url = {"/feed.xml": f"{base}/new.xml", "/new.xml": f"{base}/feed.xml"}
    for _ in range(2):  # two addresses naming each other: no going back and forth
        assert (
            refresh_feed(store, dirs, store.feed("show")).moved is None
            and store.feed("show").url == f"{base}/new.xml"
        )


def test_transcripts_move_to_the_cut_timeline():
    from adcut.serve.transcripts import (
        TranscriptError,
        retime,
        retime_json,
        retime_srt,
        retime_vtt,
        transcript_format,
    )

    spans = [(0.0, 25.0), (45.0, 70.0)]  # an ad at 25-45 s was cut
    vtt = (
        "\ufeffWEBVTT\nKind: captions\n\nNOTE made by hand\n\nintro\n00:00:05.000 --> 00:00:08.000 align:start\n"
        "Welcome.\n\n00:30.000 --> 00:35.500\nBrought to you by <00:00:31.000>Acme.\n\n"
        "00:00:24.000 --> 00:00:30.000\nmostly ad\n\n00:00:23.000 --> 00:00:26.000\nmostly content\n\n"
        "01:00:55.000 --> 01:00:58.250\nlate\n\n00:00:55.000 --> 00:00:58.250\n<v Ann>Back to <00:00:56.500>it.\n"
    )
    assert retime_vtt(vtt, spans) == (
        "WEBVTT\nKind: captions\n\nNOTE made by hand\n\nintro\n00:00:05.000 --> 00:00:08.000 align:start\nWelcome.\n\n"
        "00:00:23.000 --> 00:00:25.000\nmostly content\n\n"
        "00:00:35.000 --> 00:00:38.250\n<v Ann>Back to <00:00:36.500>it.\n"
    )  # past the end: dropped
    srt = (
        "1\r\n00:00:05,000 --> 00:00:08,000\r\nWelcome\r\n\r\n2\r\n00:00:30,000 --> 00:00:35,000\r\nAcme\r\n\r\n"
        "3\r\n00:00:55,000 --> 00:00:58,000\r\nBack\r\nline two\r\n"
    )
    assert retime_srt(srt, spans) == (
        "1\n00:00:05,000 --> 00:00:08,000\nWelcome\n\n2\n00:00:35,000 --> 00:00:38,000\nBack\nline two\n"
    )
    moved = json.loads(
        retime_json(
            json.dumps(
                {
                    "version": "1.0.0",
                    "x": 1,
                    "segments": [
                        {"speaker": "Ann", "startTime": 5, "endTime": 8, "body": "Welcome"},
                        {"startTime": 30, "endTime": 35, "body": "Acme"},
                        {"startTime": 55, "body": "Back"},
                    ],
                }
            ),
            spans,
        )
    )
    assert moved == {
        "version": "1.0.0",
        "x": 1,
        "segments": [
            {"speaker": "Ann", "startTime": 5.0, "endTime": 8.0, "body": "Welcome"},
            {"startTime": 35.0, "body": "Back"},
        ],
    }
    assert "Welcome" in retime("srt", srt.encode("latin-1"), spans)
    for fmt, body in (
        ("vtt", b"1\n00:00:01,000 --> 00:00:02,000\nno header"),
        ("srt", b"<html>hi</html>"),
        ("json", b'{"chapters": []}'),
        ("json", b"not json"),
    ):
        with pytest.raises(TranscriptError):
            retime(fmt, body, spans)
    assert transcript_format("text/vtt; charset=utf-8", "x") == "vtt"
    assert transcript_format("application/srt", "x") == transcript_format(None, "http://h/a.SRT") == "srt"
    assert (
        transcript_format("text/html", "http://h/a.vtt") is None
        and transcript_format(None, "http://h/a.txt") is None
    )
