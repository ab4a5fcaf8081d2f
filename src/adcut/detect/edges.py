"""Moving ad edges by the lateness measured at training (learn/alignment.py measures it)."""

from __future__ import annotations

from adcut.core.segments import Segment
from adcut.core.units import Seconds

MIN_KEEP_SECONDS = 1.0  # shift_edges leaves every segment at least this long (or as long as it was)


EDGE_KINDS = ("start", "end")  # of an ad (the first class): content -> ad, ad -> content


def shift_edges(
    segments: list[Segment],
    label: str,
    offsets: dict[str, Seconds] | None,
    min_seconds: dict[str, Seconds] | None = None,
) -> list[Segment]:
    """``segments`` (a tiling) with each start of a ``label`` segment moved by ``-offsets["start"]``
    and each end by ``-offsets["end"]`` (the measured lateness of each edge).

    No segment becomes shorter than its class minimum in ``min_seconds`` (or than it already was,
    if it was shorter): both moves into a segment are scaled down until it keeps that length, so
    no boundary passes another.
    """
    offsets = offsets or {}
    min_seconds = min_seconds or {}
    if len(segments) < 2 or not any(offsets.get(kind) for kind in EDGE_KINDS):
        return list(segments)
    moves = []  # boundary i lies between segments i and i+1; a move > 0 shrinks i+1, < 0 shrinks i
    for before, after in zip(segments, segments[1:]):
        if before.label != label and after.label == label:
            moves.append(-float(offsets.get("start") or 0.0))
        elif before.label == label and after.label != label:
            moves.append(-float(offsets.get("end") or 0.0))
        else:
            moves.append(0.0)
    for j, seg in enumerate(segments):  # cut short the moves into a segment that would become too short
        from_left = max(0.0, moves[j - 1]) if j > 0 else 0.0
        from_right = max(0.0, -moves[j]) if j < len(moves) else 0.0
        length = seg.end - seg.start
        budget = length - min(max(min_seconds.get(seg.label, 0.0), MIN_KEEP_SECONDS), length)
        if from_left + from_right > budget:
            scale = budget / (from_left + from_right)
            if from_left:
                moves[j - 1] *= scale
            if from_right:
                moves[j] *= scale
    edges = (
        [segments[0].start] + [s.start + float(m) for s, m in zip(segments[1:], moves)] + [segments[-1].end]
    )
    return [Segment(a, b, seg.label) for seg, a, b in zip(segments, edges, edges[1:])]
