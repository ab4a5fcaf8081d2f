"""ID3v2 tags in front of the audio: their size, syncsafe integers, and chapter (``CHAP``/``CTOC``) frames re-timed
to the cut audio."""

from __future__ import annotations

import struct

from adcut.errors import CopyUnsupported
from adcut.media.timeline import MIN_CHAPTER_SECONDS, retime


def id3v2_size(data, at: int) -> int:
    if data[at : at + 3] != b"ID3" or len(data) < at + 10:
        return 0
    size = syncsafe(data[at + 6 : at + 10])
    footer = 10 if data[at + 5] & 0x10 else 0
    return 10 + size + footer


def syncsafe(b: bytes) -> int:
    return (b[0] & 0x7F) << 21 | (b[1] & 0x7F) << 14 | (b[2] & 0x7F) << 7 | (b[3] & 0x7F)


def _to_syncsafe(n: int) -> bytes:
    return bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])


def retime_id3(tag: bytes, spans_seconds: list[tuple[float, float]]) -> tuple[bytes, int, bool]:
    """The ID3v2 tag with its CHAP frames re-timed to the cut audio (those inside removed audio dropped, and from
    CTOC lists); returns (tag, chapters kept, has cover art). Tags this cannot read are returned as they are."""

    if len(tag) < 10 or tag[:3] != b"ID3":
        return tag, 0, False
    version, flags = tag[3], tag[5]
    size = syncsafe(tag[6:10])
    body = tag[10 : 10 + size]
    has_picture = b"APIC" in body
    if version not in (3, 4) or flags & 0x80 or flags & 0x40:  # unsynchronised, or an extended header
        if b"CHAP" in body:
            raise CopyUnsupported("its ID3v2 chapters are in a form this cannot re-time")
        return tag, 0, has_picture
    frames = []
    pos = 0
    while pos + 10 <= len(body) and body[pos : pos + 4] != b"\x00\x00\x00\x00":
        fid = body[pos : pos + 4]
        fsize = (
            syncsafe(body[pos + 4 : pos + 8])
            if version == 4
            else int.from_bytes(body[pos + 4 : pos + 8], "big")
        )
        fflags = body[pos + 8 : pos + 10]
        if pos + 10 + fsize > len(body):
            if b"CHAP" in body:
                raise CopyUnsupported("its ID3v2 tag cannot be read to re-time the chapters")
            return tag, 0, has_picture
        frames.append([fid, fflags, body[pos + 10 : pos + 10 + fsize]])
        pos += 10 + fsize
    dropped: set[bytes] = set()
    kept_chapters = 0
    out_frames = []
    for fid, fflags, payload in frames:
        if fid == b"CHAP":
            end_id = payload.find(b"\x00")
            if end_id < 0 or end_id + 17 > len(payload):
                out_frames.append((fid, fflags, payload))
                continue
            element = payload[:end_id]
            start_ms, end_ms = struct.unpack(">II", payload[end_id + 1 : end_id + 9])
            new_start = retime(start_ms / 1000, spans_seconds)
            new_end = retime(end_ms / 1000, spans_seconds)
            if new_end - new_start < MIN_CHAPTER_SECONDS:
                dropped.add(element)
                continue
            kept_chapters += 1
            times = struct.pack(
                ">IIII", round(new_start * 1000), round(new_end * 1000), 0xFFFFFFFF, 0xFFFFFFFF
            )
            payload = payload[: end_id + 1] + times + payload[end_id + 17 :]
        out_frames.append((fid, fflags, payload))
    if dropped:
        for i, (fid, fflags, payload) in enumerate(out_frames):
            if fid == b"CTOC":
                out_frames[i] = (fid, fflags, _ctoc_without(payload, dropped))
    new_body = b"".join(
        fid + (_to_syncsafe(len(p)) if version == 4 else len(p).to_bytes(4, "big")) + fflags + p
        for fid, fflags, p in out_frames
    )
    if len(new_body) <= size:
        new_body += bytes(size - len(new_body))  # keep the tag's size: the rest is padding
    return tag[:6] + _to_syncsafe(len(new_body)) + new_body + tag[10 + size :], kept_chapters, has_picture


def _ctoc_without(payload: bytes, dropped: set[bytes]) -> bytes:
    end_id = payload.find(b"\x00")
    if end_id < 0 or end_id + 3 > len(payload):
        return payload
    count = payload[end_id + 2]
    pos = end_id + 3
    children = []
    for _ in range(count):
        end = payload.find(b"\x00", pos)
        if end < 0:
            return payload
        children.append(payload[pos:end])
        pos = end + 1
    kept = [c for c in children if c not in dropped]
    return payload[: end_id + 2] + bytes([len(kept)]) + b"".join(c + b"\x00" for c in kept) + payload[pos:]
