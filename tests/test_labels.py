import pytest

from adcut.core.segments import Segment, boundaries, fill_background
from adcut.core.units import format_time, parse_time
from adcut.errors import LabelError
from adcut.formats.labels import (
    format_audacity,
    parse_audacity,
    read_labels,
    read_segments_txt,
    segments_from_boundaries,
    write_labels,
)


def test_audacity_round_trip_and_background_fill(tmp_path):
    segs = [Segment(10.0, 25.5, "ad"), Segment(60.0, 90.25, "ad")]
    path = tmp_path / "ep.txt"
    write_labels(path, segs)
    tiled = read_labels(path, duration=120.0)
    assert tiled == [
        Segment(0.0, 10.0, "content"),
        Segment(10.0, 25.5, "ad"),
        Segment(25.5, 60.0, "content"),
        Segment(60.0, 90.25, "ad"),
        Segment(90.25, 120.0, "content"),
    ]
    assert boundaries(tiled) == [10.0, 25.5, 60.0, 90.25]


@pytest.mark.parametrize("suffix", [".json", ".csv", ".txt"])
def test_each_format_round_trips(tmp_path, suffix):
    segs = [Segment(0.0, 5.0, "content"), Segment(5.0, 12.5, "ad")]
    path = tmp_path / f"x{suffix}"
    write_labels(path, segs)
    assert read_labels(path) == segs


def test_aliases_are_accepted():
    segs, _ = parse_audacity("1\t2\tA\n3\t4\tb\n5\t6\tAD\n")
    assert [s.label for s in segs] == ["ad", "content", "ad"]


@pytest.mark.parametrize(
    "text,message",
    [
        ("5\t8\tad\n1\t2\tad\n", "x.txt:2: labels are not sorted"),
        ("1\t5\tad\n4\t8\tad\n", "x.txt:2: overlaps the previous label"),
        ("-1\t5\tad\n", "x.txt:1: negative time"),
        ("1\t500\tad\n", "x.txt:1: ends at 500 s, beyond the audio's end"),
        ("1\t5\tmusic\n", "x.txt:1: unknown class 'music'"),
        ("1\tfive\tad\n", "x.txt:1: end 'five' is not a time"),
        ("garbage\n", "x.txt:1: expected 'start<TAB>end<TAB>label'"),
        ("6\t5\tad\n", "x.txt:1: end 5 is not after start 6"),
    ],
)
def test_bad_label_files_name_file_and_line(tmp_path, text, message):
    path = tmp_path / "x.txt"
    path.write_text(text)
    with pytest.raises(LabelError) as info:
        read_labels(path, duration=100.0)
    assert message.replace("x.txt", str(path)) in str(info.value)


def test_point_labels_and_spectral_lines_are_skipped():
    segs, lines = parse_audacity("3\t3\tnote\n1\t2\tad\n\\\t100\t2000\n")
    assert segs == [Segment(1.0, 2.0, "ad")] and lines == [2]


def test_segments_txt_import_alternates_from_first_class(tmp_path):
    path = tmp_path / "segments.txt"
    path.write_text("[ep1]\n0\n30\n90\n[ep2]\n12.5\n40\n")
    data = read_segments_txt(path)
    assert segments_from_boundaries(data["ep1"][0], 120.0) == [
        Segment(0, 30, "ad"),
        Segment(30, 90, "content"),
        Segment(90, 120, "ad"),
    ]
    ep2 = fill_background(segments_from_boundaries(data["ep2"][0], 60.0), 60.0)
    assert ep2 == [Segment(0, 12.5, "content"), Segment(12.5, 40, "ad"), Segment(40, 60, "content")]


def test_segments_txt_errors(tmp_path):
    path = tmp_path / "segments.txt"
    path.write_text("[ep1]\n30\n10\n")
    with pytest.raises(LabelError, match=r"segments.txt:3: boundary 10 is not after"):
        read_segments_txt(path)
    path.write_text("5\n[ep]\n")
    with pytest.raises(LabelError, match=r"segments.txt:1: boundary before the first"):
        read_segments_txt(path)


def test_time_parsing_and_formatting():
    assert parse_time("1:30") == 90
    assert parse_time("01:02:03.5") == 3723.5
    assert parse_time("600") == 600
    assert format_time(3723.5, 1) == "1:02:03.5"
    assert format_time(59.96, 1) == "0:01:00.0"
    with pytest.raises(ValueError):
        parse_time("1:75")


def test_missing_label_file(tmp_path):
    with pytest.raises(LabelError, match="label file not found"):
        read_labels(tmp_path / "nope.txt")


def test_format_audacity_only_some_classes():
    text = format_audacity([Segment(0, 1, "content"), Segment(1, 2, "ad")], only=("ad",))
    assert text == "1.000000\t2.000000\tad\n"
