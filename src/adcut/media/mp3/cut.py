"""The MP3 copy path of the cut (its entry point, cut_mp3): kept frames copied byte for byte, only a few frames at each join re-encoded.

An MP3 file is a run of frames (1152 samples for MPEG-1, 576 for MPEG-2/2.5 layer III), optionally
behind an ID3v2 tag and a first "Xing"/"Info" frame that says how many frames and bytes follow
(with a seek table and, from LAME and FFmpeg, the encoder delay and padding that gapless players
trim). Ads are cut on frame boundaries, each edge rounded outward (no ad audio is kept, at most one
frame of content is lost per edge).

The **bit reservoir** is what makes this more than a byte copy: a frame's audio data may begin up to
511 bytes (255 for MPEG-2) *before* its header, inside earlier frames. At each join, therefore:

* the last few kept frames before the cut and the first few after it are decoded (from a few frames
  earlier, so that their own reservoir and the decoder's overlap are right), faded on the kept side
  as the re-encode path does, and encoded again with LAME *without* a reservoir, from a warm start
  (the encoder is fed the copied audio before the stretch, whose frames are then thrown away, so
  the first new frame overlaps the last copied one as the original did);
* the first copied frame after the stretch still points back ``main_data_begin`` bytes: those bytes
  (the input's own) are placed at the end of the new frames' bytes; the last new frames are made
  larger (a higher bit-rate index) when they have no room, their data moving back into the
  reservoir of the new frames before them, and when even that is not enough (a 320 kbps file)
  the stretch is encoded again a bit-rate step lower.

The Xing/Info frame is rewritten (frame count, byte count, seek table) with the LAME tag's encoder
delay and padding and its checksums (the audio CRC computed while writing); ID3v2 tags (cover art
included) are copied, with chapter (``CHAP``) times re-timed to the cut audio; tags after the audio
(ID3v1, APE, an appended ID3v2) are copied as they are. Bytes that are not frames (a damaged stretch)
are skipped with a warning; the frame after them lost the reservoir bytes it needed, so it and the
next are dropped and the gap is joined like a cut. Anything this package cannot handle (free-format
bit rates, layer I/II, a stream that changes sample rate, chapters in an unsynchronised ID3v2 tag)
raises CopyUnsupported and the cut
falls back to the re-encode path. The file is mapped, not read: pages already parsed or copied are
released, so a long episode never sits in memory whole.
"""

from __future__ import annotations

import bisect
import logging
import mmap
from array import array
from collections.abc import Sequence
from pathlib import Path

from adcut.core.segments import Segment
from adcut.core.units import Seconds
from adcut.errors import AudioError, CopyUnsupported, OutputError
from adcut.media.mp3.frames import DECODER_DELAY, Mp3File, read_mp3, release
from adcut.media.mp3.id3 import retime_id3
from adcut.media.mp3.joins import rebuild, reservoir_before, stretch_bit_rate
from adcut.media.mp3.plan import kept_frames, plan_pieces, without
from adcut.media.mp3.xing import Crc16, build_xing
from adcut.media.timeline import CutResult, NothingKept, kept_spans

log = logging.getLogger(__name__)

METHOD = "copy-mp3"


def cut_mp3(
    path: Path,
    info,
    segments: Sequence[Segment],
    tmp: Path,
    out_path: Path,
    *,
    remove: Sequence[str] = ("ad",),
    fade_seconds: Seconds = 0.03,
):
    """Write the cut MP3 to ``tmp``; see the module's description. Returns a CutResult."""

    path = Path(path)
    try:
        handle = open(path, "rb")
    except OSError as error:
        raise AudioError(f"{path}: cannot open ({error.strerror})") from None
    with handle:
        try:
            data = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):
            raise CopyUnsupported("cannot map the file") from None
        mp3 = None
        try:
            mp3 = read_mp3(path, data)
            if mp3.damaged:
                skipped = sum(size for _, size in mp3.damaged)
                if skipped > len(data) // 20 or max(size for _, size in mp3.damaged) > 1 << 14:
                    # Not a damaged stretch: a stream that changes sample rate or version, or not MP3 at all.
                    raise CopyUnsupported(f"{skipped} bytes are not frames like the first ones")
                where = ", ".join(f"byte {offset}" for offset, _ in mp3.damaged[:3])
                log.warning(
                    "%s: skipped %d damaged byte(s) that are not MP3 frames (at %s%s)",
                    path.name,
                    skipped,
                    where,
                    ", ..." if len(mp3.damaged) > 3 else "",
                )
            return _write(path, mp3, info, segments, tmp, out_path, remove, fade_seconds)
        finally:
            del mp3  # release the mapping's exported slices before closing it
            data.close()


def _write(path, mp3: Mp3File, info, segments, tmp, out_path, remove, fade_seconds) -> CutResult:
    n = mp3.samples_per_frame
    rate = mp3.first.sample_rate
    total = len(mp3.offsets)
    duration_in = mp3.decoded_samples / rate

    duration = max([s.end for s in segments] + [info.duration or 0.0, duration_in])
    ranges = kept_frames(mp3, kept_spans(segments, remove, duration))
    for gap in sorted(mp3.gaps):
        # After damaged bytes, the first frame's reservoir bytes are lost (it would decode to noise) and the next
        # one overlaps with it: both go, and the gap is joined like a cut, faded on both sides.
        ranges = without(ranges, gap, gap + 2)
    if not ranges:
        raise NothingKept(f"{path}: every segment is {'/'.join(remove)}; no cut file written")
    fade_samples = int(round(fade_seconds * rate))
    edge = max(1, -(-fade_samples // n))  # re-encoded frames on each side of a join: the fade fits in them
    pieces = plan_pieces(ranges, total, edge)
    bit_rate = stretch_bit_rate(mp3)

    # Output frames, in order: (lo, hi) runs of input frames copied as they are, or lists of new frames.
    output: list[tuple[int, int] | list[bytes]] = []
    i = 0
    while i < len(pieces):
        piece = pieces[i]
        if piece.copy:
            output.append((piece.lo, piece.hi))
            i += 1
            continue
        run = [piece]
        while i + len(run) < len(pieces) and not pieces[i + len(run)].copy:
            run.append(pieces[i + len(run)])
        before = (pieces[i - 1].lo, pieces[i - 1].hi) if i > 0 and pieces[i - 1].copy else None
        j = i + len(run)
        after = (pieces[j].lo, pieces[j].hi) if j < len(pieces) else None
        reservoir = reservoir_before(mp3, after[0]) if after is not None else b""
        output.append(rebuild(mp3, run, before, after, fade_samples, bit_rate, reservoir))
        i = j

    sizes = array("q")
    for item in output:
        if isinstance(item, tuple):
            sizes.extend(mp3.sizes[item[0] : item[1]])
        else:
            sizes.extend(len(f) for f in item)
    new_rates = {
        int.from_bytes(f[:4], "big") >> 12 & 15 for item in output if isinstance(item, list) for f in item
    }
    input_cbr = max(mp3.sizes) - min(mp3.sizes) <= 1 and not (
        mp3.xing is not None and mp3.xing.name == b"Xing"
    )
    bitrates_vary = not input_cbr or bool(new_rates - {mp3.first.bitrate_index})

    # Gapless trimming: the input's delay where the output starts with its first frame, its padding where it
    # ends with its last; a cut edge keeps its whole frame (the fade is inside it).
    first_lo, last_hi = ranges[0][0], ranges[-1][1]
    delay = mp3.xing.delay if (mp3.xing and first_lo == 0) else 0
    padding = mp3.xing.padding if (mp3.xing and last_hi == total) else DECODER_DELAY
    has_tag = mp3.xing is not None and mp3.xing.tag_at is not None
    write_xing = mp3.xing is not None or bitrates_vary

    # Kept spans in the input's (trimmed) seconds, as the frames actually kept them: chapters are re-timed by these.
    spans = []
    skip = mp3.skip
    for lo, hi in ranges:
        start = max(0.0, (lo * n - skip) / rate)
        end = min(duration_in, (hi * n - skip) / rate)
        spans.append((start, end))
    id3, chapters, cover = retime_id3(mp3.id3v2, spans)

    frames_out = len(sizes)
    if has_tag:
        kept_samples = frames_out * n - delay - padding
    else:
        kept_samples = frames_out * n
    kept_seconds = max(0.0, kept_samples / rate)

    try:
        with open(tmp, "wb") as out:
            out.write(id3)
            xing_at = out.tell()
            if write_xing:  # written again below, once the audio's CRC is known
                out.write(build_xing(mp3, sizes, bitrates_vary, delay, padding, None))
            crc = Crc16() if write_xing and has_tag else None
            for chunk in _audio_chunks(mp3, output):
                out.write(chunk)
                if crc is not None:
                    crc.update(chunk)
            out.write(mp3.trailer)
            if crc is not None:
                out.seek(xing_at)
                out.write(build_xing(mp3, sizes, bitrates_vary, delay, padding, crc.value()))
    except OSError as error:
        raise OutputError(f"{out_path}: cannot write ({error.strerror})") from None
    return CutResult(
        Path(out_path), kept_seconds, max(0.0, duration_in - kept_seconds), chapters, cover, METHOD
    )


def _audio_chunks(mp3: Mp3File, output: list[tuple[int, int] | list[bytes]]):
    """The output's audio frames as byte chunks: copied runs straight from the input (in pieces of about 1 MB)."""
    for item in output:
        if isinstance(item, tuple):
            lo, hi = item
            # Contiguous input frames are one byte range, unless damaged bytes were skipped between them;
            # long ranges go in pieces of about 1 MB.
            cuts = sorted({lo, hi} | {g for g in mp3.gaps if lo < g < hi})
            for a, b in zip(cuts, cuts[1:]):
                start = a
                while start < b:
                    end = min(
                        b, bisect.bisect_right(mp3.offsets, mp3.offsets[start] + (1 << 20), start + 1, b)
                    )
                    first, last = mp3.offsets[start], mp3.offsets[end - 1] + mp3.sizes[end - 1]
                    yield mp3.data[first:last]
                    release(mp3.data, first, last)
                    start = end
        else:
            yield from item
