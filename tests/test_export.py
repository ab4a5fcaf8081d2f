"""Each output format against its specification; Audacity and JSON by a round trip through the label reader."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from adcut.core.segments import Segment
from adcut.detect.pipeline import Detection
from adcut.errors import AdcutError
from adcut.formats.export import (
    DEFAULT_FORMATS,
    WRITERS,
    cue_time,
    ffmetadata_escape,
    get_writer,
    parse_formats,
)
from adcut.formats.labels import read_labels

DURATION = 3725.4


@pytest.fixture
def detection(tmp_path):
    segments = [
        Segment(0.0, 61.25, "content"),
        Segment(61.25, 125.5, "ad"),
        Segment(125.5, 3600.04, "content"),
        Segment(3600.04, DURATION, "ad"),
    ]
    steps = int(np.ceil(DURATION / 0.5))
    p_ad = np.zeros(steps, np.float32)
    for seg in segments:
        if seg.label == "ad":
            p_ad[int(seg.start / 0.5) : int(np.ceil(seg.end / 0.5))] = 0.9
    p_ad[p_ad == 0] = 0.2
    return Detection(
        path=tmp_path / "show.mp3",
        duration=DURATION,
        classes=("ad", "content"),
        segments=segments,
        confidences=[0.8, 0.9, 0.8, 0.9],
        step_seconds=0.5,
        probabilities=np.stack([p_ad, 1 - p_ad], axis=1),
        model_id="m.pt@abc",
        settings={"hop_seconds": 1.0},
    )


def write(detection, name) -> Path:
    writer = get_writer(name)
    path = writer.output_path(detection.path)
    writer.write(detection, path)
    return path


def test_output_names_are_distinct_and_documented(detection):
    names = {get_writer(n).output_path(detection.path).name for n in WRITERS}
    assert names == {"show.adcut.txt", "show.adcut.json", "show.chapters.json", "show.ffmeta.txt", "show.cue"}
    assert get_writer("cue").output_path(detection.path, Path("/elsewhere")) == Path("/elsewhere/show.cue")


def test_audacity_round_trips_through_the_label_reader(detection):
    path = write(detection, "audacity")
    assert read_labels(path, duration=DURATION) == detection.segments
    assert read_labels(path) == detection.segments  # every segment is written, not only the ads


def test_json_holds_segments_settings_model_and_per_second_probabilities(detection):
    path = write(detection, "json")
    data = json.loads(path.read_text())
    assert read_labels(path) == detection.segments  # the label reader accepts it too
    assert data["model"] == "m.pt@abc" and data["settings"] == {"hop_seconds": 1.0}
    assert data["duration"] == DURATION
    assert data["boundaries"] == [61.25, 125.5, 3600.04]
    assert [s["confidence"] for s in data["segments"]] == [0.8, 0.9, 0.8, 0.9]
    probs = data["probabilities"]
    assert probs["step_seconds"] == 1.0
    assert len(probs["ad"]) == len(probs["content"]) == int(np.ceil(DURATION))
    assert probs["ad"][62] == pytest.approx(0.9) and probs["ad"][10] == pytest.approx(0.2)
    assert np.allclose(np.add(probs["ad"], probs["content"]), 1.0, atol=2e-3)


def test_podcast_chapters_follow_the_podcasting_2_spec(detection):
    data = json.loads(write(detection, "podcast").read_text())
    assert data["version"] == "1.2.0"  # required string
    chapters = data["chapters"]  # required array
    assert [c["startTime"] for c in chapters] == [0.0, 61.25, 125.5, 3600.04]
    assert all(isinstance(c["startTime"], (int, float)) and isinstance(c["title"], str) for c in chapters)
    assert [c["title"] for c in chapters] == ["Content", "Ad", "Content", "Ad"]
    assert [c["endTime"] for c in chapters] == [61.25, 125.5, 3600.04, DURATION]
    allowed = {"startTime", "endTime", "title", "img", "url", "toc", "location"}
    assert all(set(c) <= allowed for c in chapters)


def test_ffmetadata_is_read_back_by_ffmpeg(detection):
    import av

    path = write(detection, "ffmetadata")
    text = path.read_text()
    assert text.startswith(";FFMETADATA1\n")
    sections = text.count("[CHAPTER]")
    assert sections == 4 and text.count("TIMEBASE=1/1000") == 4
    container = av.open(str(path), format="ffmetadata")
    chapters = container.chapters()
    container.close()
    assert [(c["start"], c["end"]) for c in chapters] == [
        (0, 61250),
        (61250, 125500),
        (125500, 3600040),
        (3600040, 3725400),
    ]
    assert [c["metadata"]["title"] for c in chapters] == ["Content", "Ad", "Content", "Ad"]


def test_ffmetadata_escapes_its_special_characters(tmp_path):
    assert ffmetadata_escape("a=b;c#d\\e\nf") == "a\\=b\\;c\\#d\\\\e\\\nf"
    import av

    from adcut.formats.export import FfmetadataWriter

    class Labelled:
        segments = [Segment(0, 1, "x=y;#z")]

    path = tmp_path / "meta.txt"
    path.write_text(FfmetadataWriter().render(Labelled()))
    container = av.open(str(path), format="ffmetadata")
    assert container.chapters()[0]["metadata"]["title"] == "X=y;#z"
    container.close()


def test_cue_sheet_tracks_and_index_times(detection):
    text = write(detection, "cue").read_text()
    lines = text.splitlines()
    assert lines[0] == 'FILE "show.mp3" MP3'
    tracks = re.findall(r"^  TRACK (\d\d) AUDIO$", text, re.M)
    assert tracks == ["01", "02", "03", "04"]
    titles = re.findall(r'^    TITLE "(.*)"$', text, re.M)
    assert titles == ["Content", "Ad", "Content", "Ad"]
    indexes = re.findall(r"^    INDEX 01 (\d+):(\d\d):(\d\d)$", text, re.M)
    seconds = [int(m) * 60 + int(s) + int(f) / 75 for m, s, f in indexes]
    assert all(int(f) < 75 and int(s) < 60 for _, s, f in indexes)
    np.testing.assert_allclose(seconds, [0.0, 61.25, 125.5, 3600.04], atol=1 / 75)


def test_cue_time_uses_75_frames_per_second():
    assert cue_time(0) == "00:00:00"
    assert cue_time(61.2) == "01:01:15"
    assert cue_time(3725.4) == "62:05:30"


def test_format_lists():
    assert parse_formats(None) == DEFAULT_FORMATS == ("audacity", "json")
    assert parse_formats("cue, podcast,cue") == ("cue", "podcast")
    with pytest.raises(AdcutError, match="unknown output format 'mp4chaps'"):
        parse_formats("audacity,mp4chaps")


def test_writes_are_atomic_and_leave_no_temporary_files(detection):
    for name in WRITERS:
        write(detection, name)
    leftovers = [p.name for p in detection.path.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []
