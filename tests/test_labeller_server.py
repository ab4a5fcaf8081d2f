"""The labeller's server and ``adcut label``: peaks, range requests, token, traversal, validation, saving."""

from __future__ import annotations

import base64
import json
import socket
from pathlib import Path

import numpy as np
import pytest

from adcut.cli import main
from adcut.core.segments import Segment
from adcut.demo.synth import EpisodeSpec
from adcut.errors import AdcutError
from adcut.formats.labels import format_audacity, read_labels
from adcut.media.encode import write_audio

starlette_testclient = pytest.importorskip("starlette.testclient")


def session_for(episode: Path, labels: Path | None = None, model: Path | str | None = None):
    from adcut.labeller.session import build_session

    return build_session(
        episode, labels, prefill_model=model is not None, model=Path(model) if model else None
    )


@pytest.fixture
def client_for():
    """``client_for(session)`` -> a TestClient whose background peaks decode has finished."""
    from adcut.labeller.server import create_app

    clients = []

    def factory(session):
        client = starlette_testclient.TestClient(create_app(session))
        assert session.peaks.wait(30)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()


@pytest.fixture
def episode(make_episode):
    path, _ = make_episode("show", EpisodeSpec(30.0, ((10.0, 18.0),)))  # writes show.txt with the ad
    return path


def folder_names(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


# --------------------------------------------------------------------------- peaks


def known_signal(tmp_path: Path) -> Path:
    """8 kHz stereo: 1 s of a 200 Hz sine at 0.5 (right channel inverted), 1 s silence, 0.5 s at 0.25."""
    sr = 8000
    t = np.arange(sr) / sr
    loud = 0.5 * np.sin(2 * np.pi * 200 * t)
    quiet = 0.25 * np.sin(2 * np.pi * 200 * t[: sr // 2])
    left = np.concatenate([loud, np.zeros(sr), quiet]).astype(np.float32)
    path = tmp_path / "known.wav"
    write_audio(path, np.stack([left, -left]), sr)
    return path


def test_peaks_of_a_known_signal(tmp_path):
    from adcut.labeller.peaks import PeaksConfig, coarsen, compute_peaks

    config = PeaksConfig(bins_per_second=100, level_factor=4, coarsest_bins=10)
    peaks = compute_peaks(known_signal(tmp_path), config)
    assert peaks.complete and peaks.error is None
    assert peaks.duration == pytest.approx(2.5)
    assert peaks.seconds_per_bin(0) == pytest.approx(0.01)
    finest = peaks.levels[0]
    assert finest.shape == (250, 2)
    tolerance = 2 / 32768  # 16-bit WAV
    # Left and right are opposite: per-channel min/max keeps the full swing that a mono mix would cancel.
    np.testing.assert_allclose(finest[:100, 0], -0.5, atol=tolerance)
    np.testing.assert_allclose(finest[:100, 1], 0.5, atol=tolerance)
    np.testing.assert_allclose(finest[100:200], 0.0, atol=tolerance)
    np.testing.assert_allclose(finest[200:, 1], 0.25, atol=tolerance)
    # Each coarser level merges 4 columns of the one below, down to the overview's width.
    assert [level.shape[0] for level in peaks.levels] == [250, 63, 16, 4]
    for finer, coarser in zip(peaks.levels, peaks.levels[1:]):
        np.testing.assert_array_equal(coarser, coarsen(finer, 4))
    np.testing.assert_allclose(
        peaks.levels[-1][:, 1], [0.5, 0.5, 0.0, 0.25], atol=tolerance
    )  # 0.64 s columns


def test_peaks_endpoint_sends_int8_columns_rounded_outwards(tmp_path, client_for):
    client = None
    path = known_signal(tmp_path)
    session = session_for(path)
    client = client_for(session)
    response = client.get("/api/peaks", headers={"X-Adcut-Token": session.token})
    assert response.status_code == 200
    body = response.json()
    assert body["complete"] is True and body["duration"] == pytest.approx(2.5)
    level = body["levels"][0]
    assert level["seconds_per_bin"] == pytest.approx(0.01) and level["count"] == 250
    data = np.frombuffer(base64.b64decode(level["data"]), np.int8).reshape(-1, 2)
    assert data.shape == (250, 2)
    assert (data[:100, 0] == -64).all() and (data[:100, 1] == 64).all()  # 0.5 * 127 = 63.5, outwards
    assert np.abs(data[110:190]).max() <= 1
    assert (data[200:, 1] == 32).all()  # 0.25 * 127 = 31.75 -> 32
    assert body["levels"][-1]["count"] <= 2000


def test_peaks_grow_while_decoding_and_match_when_done(tmp_path):
    from adcut.labeller.peaks import PeakBuilder, PeaksConfig

    rng = np.random.default_rng(0)
    samples = rng.uniform(-1, 1, (2, 44100 * 5)).astype(np.float32)
    builder = PeakBuilder(44100, PeaksConfig(chunk_seconds=1.0))
    for start in range(0, samples.shape[1], 1152):  # MP3-sized frames
        builder.feed(samples[:, start : start + 1152])
        if start == 1152 * 100:
            partial = builder.snapshot()
    assert not partial.complete and 0 < partial.duration < 5
    builder.finish()
    done = builder.snapshot()
    assert done.complete and done.duration == pytest.approx(5.0)
    spb = done.samples_per_bin
    assert spb == 441
    expected_max = samples.max(axis=0)[: 500 * spb].reshape(500, spb).max(axis=1)
    np.testing.assert_array_equal(done.levels[0][:, 1], expected_max)
    np.testing.assert_array_equal(partial.levels[0], done.levels[0][: len(partial.levels[0])])


# --------------------------------------------------------------------------- audio ranges


def test_audio_supports_range_requests(episode, client_for):
    session = session_for(episode)
    client = client_for(session)
    data = episode.read_bytes()
    url = f"/api/audio?token={session.token}"

    whole = client.get(url)
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-type"] == "audio/wav"

    part = client.get(url, headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    assert part.content == data[1000:2000]

    tail = client.get(url, headers={"Range": "bytes=-500"})
    assert tail.status_code == 206 and tail.content == data[-500:]

    open_ended = client.get(url, headers={"Range": f"bytes={len(data) - 10}-"})
    assert open_ended.status_code == 206 and open_ended.content == data[-10:]

    beyond = client.get(url, headers={"Range": f"bytes={len(data) + 10}-{len(data) + 20}"})
    assert beyond.status_code == 416


# --------------------------------------------------------------------------- token


def test_token_required_for_writes_and_episode_data(episode, client_for):
    session = session_for(episode)
    client = client_for(session)
    before = episode.with_suffix(".txt").read_bytes()
    good = {"segments": [{"label": "ad", "start": 1.0, "end": 2.0}]}
    for headers in ({}, {"X-Adcut-Token": "wrong"}, {"X-Adcut-Token": session.token[:-1]}):
        response = client.put("/api/labels", json=good, headers=headers)
        assert response.status_code == 403
        assert "token" in response.json()["error"]
    assert client.put("/api/labels?token=nope", json=good).status_code == 403
    assert episode.with_suffix(".txt").read_bytes() == before
    for path in ("/api/episode", "/api/labels", "/api/peaks", "/api/audio"):
        assert client.get(path).status_code == 403, path
        assert client.get(f"{path}?token={session.token}").status_code == 200, path
    # The page itself carries nothing private and loads without the token.
    page = client.get("/")
    assert page.status_code == 200 and "app.js" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]


def test_each_session_gets_its_own_random_token(episode):
    tokens = {session_for(episode).token for _ in range(3)}
    assert len(tokens) == 3 and all(len(t) >= 32 for t in tokens)


# --------------------------------------------------------------------------- static files


@pytest.mark.parametrize(
    "path",
    [
        "/static/../../etc/passwd",
        "/static/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%2f..%2fetc%2fpasswd",
        "/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/static/%252e%252e%252fetc%252fpasswd",
        "/static/..%5c..%5cetc%5cpasswd",
        "/static//etc/passwd",
        "/static/%2fetc%2fpasswd",
        "/static/../labeller/server.py",
        "/static/..%2flabeller%2fserver.py",
        "/static/..%2f__init__.py",
        "/etc/passwd",
        "/api/audio/../../etc/passwd",
    ],
)
def test_path_traversal_is_refused(episode, client_for, path):
    session = session_for(episode)
    client = client_for(session)
    response = client.get(f"{path}?token={session.token}")
    assert response.status_code == 404
    assert "root:" not in response.text and "import" not in response.text


def test_only_the_pages_own_files_are_served(episode, client_for, tmp_path):
    session = session_for(episode)
    client = client_for(session)
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css"), ("index.html", "text/html")):
        response = client.get(f"/static/{name}")
        assert response.status_code == 200 and response.headers["content-type"].startswith(kind)
    (tmp_path / "secret.txt").write_text("secret")
    assert client.get("/static/secret.txt").status_code == 404
    # A query naming another file changes nothing: the audio route only ever sends the episode.
    response = client.get(f"/api/audio?token={session.token}&path=/etc/passwd")
    assert response.content == episode.read_bytes()


# --------------------------------------------------------------------------- labels in and out


def test_labels_get_returns_the_file_beside_the_episode(episode, client_for):
    session = session_for(episode)
    client = client_for(session)
    body = client.get("/api/labels", headers={"X-Adcut-Token": session.token}).json()
    assert body == {"segments": [{"label": "ad", "start": 10.0, "end": 18.0, "confidence": None}]}


@pytest.mark.parametrize(
    "payload, message",
    [
        (
            {"segments": [{"label": "ad", "start": 5, "end": 9}, {"label": "ad", "start": 8, "end": 12}]},
            "labels: segment 2: overlaps the previous label (starts 8 < 9)",
        ),
        (
            {"segments": [{"label": "ad", "start": 12, "end": 14}, {"label": "ad", "start": 2, "end": 4}]},
            "labels: segment 2: labels are not sorted by start time",
        ),
        (
            {"segments": [{"label": "music", "start": 1, "end": 2}]},
            "labels: segment 1: unknown class 'music' (known: ad, content)",
        ),
        (
            {"segments": [{"label": "ad", "start": 25, "end": 45}]},
            "labels: segment 1: ends at 45 s, beyond the audio's end (30.000 s)",
        ),
        ({"segments": [{"label": "ad", "start": -1, "end": 2}]}, "labels: segment 1: negative time -1"),
        (
            {"segments": [{"label": "ad", "start": 4, "end": 4}]},
            "labels: segment 1: end 4 is not after start 4",
        ),
        (
            {"segments": [{"label": "ad", "start": "1", "end": 2}]},
            "labels: segment 1: start and end must be numbers of seconds",
        ),
        (
            {"segments": [{"label": "ad", "start": True, "end": 2}]},
            "labels: segment 1: start and end must be numbers of seconds",
        ),
        ({"segments": [{"label": "ad", "start": 1}]}, "labels: segment 1: needs 'label', 'start' and 'end'"),
        ({"labels": []}, 'labels: expected {"segments": [{"label", "start", "end"}, ...]}'),
        ([1, 2], 'labels: expected {"segments": [{"label", "start", "end"}, ...]}'),
    ],
)
def test_invalid_labels_are_refused_and_the_file_is_untouched(episode, client_for, payload, message):
    session = session_for(episode)
    client = client_for(session)
    label_file = episode.with_suffix(".txt")
    before, names = label_file.read_bytes(), folder_names(episode.parent)
    response = client.put("/api/labels", json=payload, headers={"X-Adcut-Token": session.token})
    assert response.status_code == 422
    assert response.json() == {"error": message}
    assert label_file.read_bytes() == before
    assert folder_names(episode.parent) == names  # no .bak, no temporary file


def test_malformed_and_oversized_requests_are_refused(episode, client_for):
    session = session_for(episode)
    client = client_for(session)
    label_file = episode.with_suffix(".txt")
    before = label_file.read_bytes()
    headers = {"X-Adcut-Token": session.token}
    bad = client.put("/api/labels", content=b"{not json", headers=headers)
    assert bad.status_code == 400 and bad.json() == {"error": "labels: the request is not valid JSON"}
    big = client.put("/api/labels", content=b" " * 3_000_000, headers=headers)
    assert big.status_code == 413
    assert client.post("/api/labels", json={"segments": []}, headers=headers).status_code == 405
    assert label_file.read_bytes() == before


def test_save_writes_audacity_file_and_keeps_previous_as_bak(episode, client_for):
    session = session_for(episode)
    client = client_for(session)
    label_file = episode.with_suffix(".txt")
    original = label_file.read_bytes()
    headers = {"X-Adcut-Token": session.token}

    first = [{"label": "ad", "start": 2.5, "end": 6.25}, {"label": "ad", "start": 10.0, "end": 19.0}]
    response = client.put("/api/labels", json={"segments": first}, headers=headers)
    assert response.status_code == 200
    assert response.json() == {"saved": str(label_file), "count": 2}
    assert read_labels(label_file) == [Segment(2.5, 6.25, "ad"), Segment(10.0, 19.0, "ad")]
    assert label_file.with_name("show.txt.bak").read_bytes() == original
    first_text = label_file.read_bytes()

    second = [{"label": "ad", "start": 11.0, "end": 18.0}]
    assert client.put("/api/labels", json={"segments": second}, headers=headers).status_code == 200
    assert label_file.read_text() == format_audacity([Segment(11.0, 18.0, "ad")])
    assert label_file.with_name("show.txt.bak").read_bytes() == first_text  # the version just replaced
    assert folder_names(episode.parent) == {"show.wav", "show.txt", "show.txt.bak"}  # no temporary files
    # A reload of the page shows what was saved.
    assert client.get("/api/labels", headers=headers).json()["segments"] == [
        {"label": "ad", "start": 11.0, "end": 18.0, "confidence": None}
    ]


def test_a_failed_write_leaves_the_old_file_whole(episode, client_for, monkeypatch):
    import adcut.core.files

    session = session_for(episode)
    client = client_for(session)
    label_file = episode.with_suffix(".txt")
    before = label_file.read_bytes()

    real_replace = adcut.core.files.os.replace

    def failing_replace(src, dst):
        if Path(dst) == label_file:
            raise OSError(28, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(adcut.core.files.os, "replace", failing_replace)
    response = client.put(
        "/api/labels",
        json={"segments": [{"label": "ad", "start": 1, "end": 3}]},
        headers={"X-Adcut-Token": session.token},
    )
    assert response.status_code == 500
    assert response.json()["error"] == f"{label_file}: cannot write (No space left on device)"
    assert label_file.read_bytes() == before
    assert not any(name.endswith(".tmp") for name in folder_names(episode.parent))


def test_labels_json_with_confidences_prefills_and_saves_beside_episode(episode, client_for):
    proposal = episode.with_name("proposal.json")
    proposal.write_text(
        json.dumps(
            {
                "segments": [
                    {"label": "content", "start": 0, "end": 9.5, "confidence": 0.9},
                    {"label": "ad", "start": 9.5, "end": 18.5, "confidence": 0.55},
                    {"label": "content", "start": 18.5, "end": 30, "confidence": 0.8},
                ]
            }
        )
    )
    session = session_for(episode, proposal)
    assert session.labels_path == episode.with_suffix(".txt")
    client = client_for(session)
    info = client.get("/api/episode", headers={"X-Adcut-Token": session.token}).json()
    assert (
        info["classes"] == ["ad", "content"]
        and info["background"] == "content"
        and info["mark_class"] == "ad"
    )
    assert info["duration"] == pytest.approx(30.0)
    assert info["labels_path"] == str(episode.with_suffix(".txt")) and info["labels_shown"] == "show.txt"
    assert [(s["label"], s["start"], s["confidence"]) for s in info["segments"]] == [
        ("content", 0.0, 0.9),
        ("ad", 9.5, 0.55),
        ("content", 18.5, 0.8),
    ]
    assert proposal.exists() and "ad" in proposal.read_text()


def test_model_prefill_has_a_confidence_per_segment(make_episode, random_checkpoint):
    pytest.importorskip("adcut.detect.pipeline")
    episode, _ = make_episode("modelled", EpisodeSpec(40.0, ((12.0, 24.0),)), labels=False)
    checkpoint = random_checkpoint(hidden_size=16, num_layers=1)
    session = session_for(episode, model=checkpoint)
    assert session.source == f"model {checkpoint.name}"
    segments = [p.segment for p in session.prefill]
    assert segments and segments[0].start == 0 and segments[-1].end == pytest.approx(40.0, abs=0.1)
    assert all(0.0 <= p.confidence <= 1.0 for p in session.prefill)


def test_model_without_a_path_prefills_from_the_newest_checkpoint(
    make_episode, random_checkpoint, tmp_path, monkeypatch
):
    import os
    import shutil

    episode, _ = make_episode("modelled", EpisodeSpec(20.0, ()), labels=False)
    models = tmp_path / "work" / "models"
    models.mkdir(parents=True)
    for age, name in ((200, "old.pt"), (100, "new.pt"), (300, "older.pt")):
        shutil.copy(random_checkpoint(hidden_size=8, num_layers=1), models / name)
        os.utime(models / name, (1_700_000_000 - age, 1_700_000_000 - age))
    monkeypatch.chdir(models.parent)
    assert session_for(episode, model="").source == "model new.pt"
    (models.parent / "empty").mkdir()
    monkeypatch.chdir(models.parent / "empty")
    with pytest.raises(AdcutError, match="no model given and none found"):
        session_for(episode, model="")


# --------------------------------------------------------------------------- the command


def run_cli(capsys, *argv):
    code = main(["label", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_label_bad_inputs_give_one_clear_line(tmp_path, episode, capsys):
    missing = tmp_path / "missing.mp3"
    assert run_cli(capsys, str(missing), "--no-browser") == (
        1,
        "",
        f"adcut: error: {missing}: file not found\n",
    )

    not_audio = tmp_path / "notes.mp3"
    not_audio.write_text("hello")
    code, out, err = run_cli(capsys, str(not_audio), "--no-browser")
    assert code == 1 and err.count("\n") == 1
    assert err.startswith(f"adcut: error: {not_audio}: not a readable audio file")

    broken = tmp_path / "broken.txt"
    broken.write_text("1\t2\tad\n5\tfive\tad\n")
    assert run_cli(capsys, str(episode), "--labels", str(broken), "--no-browser") == (
        1,
        "",
        f"adcut: error: {broken}:2: end 'five' is not a time in seconds\n",
    )

    assert run_cli(capsys, str(episode), "--labels", str(episode), "--no-browser") == (
        1,
        "",
        f"adcut: error: {episode}: unknown label format (use one of .txt, .lab, .json, .csv)\n",
    )

    missing_json = tmp_path / "nope.json"
    assert run_cli(capsys, str(episode), "--labels", str(missing_json), "--no-browser") == (
        1,
        "",
        f"adcut: error: {missing_json}: label file not found\n",
    )

    too_long = tmp_path / "long.txt"
    too_long.write_text("20\t40\tad\n")
    assert run_cli(capsys, str(episode), "--labels", str(too_long), "--no-browser") == (
        1,
        "",
        f"adcut: error: {too_long}: segment 1: ends at 40 s, beyond the audio's end (30.000 s)\n",
    )

    missing_model = tmp_path / "none.pt"
    assert run_cli(capsys, str(episode), "--model", str(missing_model), "--no-browser") == (
        1,
        "",
        f"adcut: error: {missing_model}: model file not found\n",
    )

    assert run_cli(capsys, str(episode), "--port", "70000", "--no-browser") == (
        1,
        "",
        "adcut: error: --port 70000: must be from 0 to 65535\n",
    )

    assert run_cli(capsys, str(episode), "--host", "no-such-host.invalid", "--no-browser")[2].endswith(
        "adcut: error: --host no-such-host.invalid: not an address of this machine\n"
    )
    assert folder_names(episode.parent) >= {"show.wav", "show.txt"}
    assert not any(name.endswith((".bak", ".tmp")) for name in folder_names(episode.parent))


def test_label_refuses_a_port_in_use(episode, capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        assert run_cli(capsys, str(episode), "--port", str(port), "--no-browser") == (
            1,
            "",
            f"adcut: error: port {port} is in use; choose another with --port (0: any free port)\n",
        )


class FakeServer:
    def __init__(self, session):
        self.session = session
        self.port = None

    def run(self, sockets):
        self.port = sockets[0].getsockname()[1]


def test_label_prints_the_address_with_token_and_opens_a_browser(episode, capsys, monkeypatch):
    import webbrowser

    import adcut.labeller.server as server_module

    servers, opened = [], []

    def fake_make_server(session):
        servers.append(FakeServer(session))
        return servers[-1]

    monkeypatch.setattr(server_module, "make_server", fake_make_server)
    monkeypatch.setattr(webbrowser, "open", lambda url: opened.append(url) or True)

    code, out, err = run_cli(capsys, str(episode), "--port", "0")
    assert code == 0 and err == ""
    token = servers[0].session.token
    port = servers[0].port
    url = f"http://127.0.0.1:{port}/?token={token}"
    assert url in out and opened == [url]
    assert f"labels are saved to {episode.with_suffix('.txt')}" in out

    code, out, err = run_cli(capsys, str(episode), "--port", "0", "--no-browser", "--host", "0.0.0.0")
    assert code == 0 and len(opened) == 1
    assert err.startswith("adcut: warning: listening on 0.0.0.0:")


def test_peaks_of_a_real_stereo_ogg_match_its_samples(shared_data):
    from adcut.labeller.peaks import compute_peaks
    from adcut.media.decode import decode_original

    path = next((shared_data / "music").glob("*Vibe_Ace*.ogg"), None)
    if path is None:
        pytest.skip("music/*Vibe_Ace*.ogg is not in the shared data")
    info, samples = decode_original(path)
    peaks = compute_peaks(path)
    assert peaks.sample_rate == info.sample_rate
    assert peaks.duration == pytest.approx(samples.shape[1] / info.sample_rate)
    spb = peaks.samples_per_bin
    n = samples.shape[1] // spb
    expected_max = samples[:, : n * spb].max(axis=0).reshape(n, spb).max(axis=1)
    np.testing.assert_array_equal(peaks.levels[0][:n, 1], expected_max)
    np.testing.assert_array_equal(peaks.levels[-1][:, 0].min(), samples.min())
