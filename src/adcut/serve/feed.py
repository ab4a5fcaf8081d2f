"""Reading an upstream podcast feed safely, and rewriting it into the ad-free feed.

The upstream XML is edited, not rebuilt, so every element and namespace it has (``itunes:``,
``podcast:``, ``content:``, ...) reaches the app. Per processed item: the enclosure points to the
ad-free file with its real length and type, ``itunes:duration`` is the new duration, tags tied to
the old timeline are dropped and a ``podcast:chapters`` link to chapters of the ad-free audio is
added, with a ``podcast:transcript`` for each of its transcripts re-timed to the cut
(``adcut.serve.transcripts``); the GUID is never touched. Anything that would lead an app from the proxy back to the
original feed (``atom:link rel="self"``, ``itunes:new-feed-url``, the show's ``podcast:guid``) is
pointed at the proxy or dropped, and the title gets a mark so apps do not merge the two shows.

Parsing refuses any DOCTYPE (so entity bombs and external entities never reach the parser's
expansion), resolves no entities and reads nothing from the network.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from lxml import etree

from adcut.errors import AdcutError
from adcut.serve.choices import DEFAULT_MARK
from adcut.serve.transcripts import CONTENT_TYPES, transcript_format

ITUNES = "http://www.itunes.com/dtds/podcast-1.0.dtd"
PODCAST = "https://podcastindex.org/namespace/1.0"
ATOM = "http://www.w3.org/2005/Atom"
MEDIA = "http://search.yahoo.com/mrss/"

# Per-item tags whose times or files belong to the original audio.
OLD_TIMELINE = ("transcript", "soundbite", "alternateEnclosure", "chapters")


class FeedError(AdcutError):
    """The upstream document is not a podcast feed adcut will read (HTML, malformed, hostile, not RSS)."""


@dataclass(frozen=True)
class Item:
    guid: str
    title: str | None
    url: str
    type: str | None
    published: float | None
    chapters: str | None = None  # the item's podcast:chapters JSON (of the original audio)
    transcripts: tuple[
        tuple[str, str], ...
    ] = ()  # its timed podcast:transcript files: (url, "vtt"|"srt"|"json")


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_blank_text=False,
    )


def parse_feed(body: bytes, source: str = "the feed") -> etree._Element:
    """The feed's root ``<rss>`` element; FeedError with one clear reason otherwise."""
    head = body[:2048].lstrip().lower()
    if head.startswith((b"<!doctype html", b"<html")) or b"<html" in head[:300]:
        raise FeedError(f"{source}: upstream sent a web page, not a feed")
    if re.search(rb"<!DOCTYPE|<!ENTITY", body, re.IGNORECASE):
        raise FeedError(
            f"{source}: refused: the feed declares a DOCTYPE or entities (possible entity-expansion attack)"
        )
    try:
        root = etree.fromstring(body, _parser())
    except etree.XMLSyntaxError as error:
        raise FeedError(f"{source}: not well-formed XML ({error.msg}, line {error.lineno})") from None
    if root is None:
        raise FeedError(f"{source}: empty document")
    tree = root.getroottree()
    if tree.docinfo.doctype:
        raise FeedError(f"{source}: refused: the feed declares a DOCTYPE (possible entity-expansion attack)")
    if etree.QName(root).localname.lower() == "html":
        raise FeedError(f"{source}: upstream sent a web page, not a feed")
    if root.tag != "rss" or root.find("channel") is None:
        raise FeedError(
            f"{source}: not an RSS podcast feed (the document is <{etree.QName(root).localname}>)"
        )
    return root


def _published(item: etree._Element) -> float | None:
    text = item.findtext("pubDate")
    if not text:
        return None
    try:
        return parsedate_to_datetime(text.strip()).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def items(root: etree._Element) -> list[Item]:
    """The items that have an audio enclosure, newest first (by pubDate where every item has one)."""
    found = []
    for element in root.find("channel").iterfind("item"):
        enclosure = element.find("enclosure")
        url = (enclosure.get("url") or "").strip() if enclosure is not None else ""
        if not url:
            continue
        guid = (element.findtext("guid") or "").strip() or url
        chapters = element.find(f"{{{PODCAST}}}chapters")
        chapters_url = (chapters.get("url") or "").strip() if chapters is not None else ""
        transcripts: list[tuple[str, str]] = []
        for transcript in element.iterfind(f"{{{PODCAST}}}transcript"):
            link = (transcript.get("url") or "").strip()
            fmt = transcript_format(transcript.get("type"), link)
            if fmt and link.startswith(("http://", "https://")) and fmt not in [f for _, f in transcripts]:
                transcripts.append((link, fmt))
        found.append(
            Item(
                guid,
                (element.findtext("title") or "").strip() or None,
                url,
                enclosure.get("type"),
                _published(element),
                chapters_url if chapters_url.startswith(("http://", "https://")) else None,
                tuple(transcripts),
            )
        )
    if found and all(item.published is not None for item in found):
        found.sort(key=lambda item: -(item.published or 0.0))  # stable: equal dates keep the feed's order
    return found


def channel_title(root: etree._Element) -> str | None:
    return (root.find("channel").findtext("title") or "").strip() or None


def format_duration(seconds: float) -> str:
    total = int(round(seconds))
    return f"{total // 3600:d}:{total // 60 % 60:02d}:{total % 60:02d}"


@dataclass(frozen=True)
class Ready:
    """What the rewritten feed needs of one processed episode."""

    audio_url: str
    chapters_url: str
    length: int
    type: str
    duration: float
    transcripts: tuple[tuple[str, str], ...] = ()  # (url, format) of its re-timed transcripts


@dataclass(frozen=True)
class Waiting:
    """An episode being processed, listed with the URL its ad-free audio will have (``--list-pending=wait``)."""

    audio_url: str
    type: str


def _old_timeline_removed(item: etree._Element, upstream_url: str) -> None:
    for name in OLD_TIMELINE:
        for element in item.findall(f"{{{PODCAST}}}{name}"):
            item.remove(element)
    for element in item.findall(f"{{{MEDIA}}}content"):
        if (element.get("url") or "").strip() == upstream_url:
            item.remove(element)


def _pin_guid(item: etree._Element, guid: str) -> None:
    if item.find("guid") is None:
        # The item had no GUID: apps keyed it on the enclosure URL, which now changes; pin it.
        guid_element = etree.SubElement(item, "guid", isPermaLink="false")
        guid_element.text = guid


def rewrite(
    body: bytes,
    *,
    feed_url: str,
    ready: dict[str, Ready],
    mark: str = DEFAULT_MARK,
    list_pending: bool = False,
    waiting: dict[str, Waiting] | None = None,
) -> bytes:
    """The ad-free feed from the upstream XML ``body``.

    ``ready`` maps upstream GUIDs to their processed episode, ``waiting`` those being processed to
    the URL their ad-free audio will have (listed with ``length="0"``, no duration and none of the
    tags tied to the original timeline). Other items with an enclosure are left out, or with
    ``list_pending`` kept as upstream has them (the original audio).
    """
    waiting = waiting or {}
    root = parse_feed(body)
    channel = root.find("channel")
    title = channel.find("title")
    if title is not None and mark and not (title.text or "").endswith(mark):
        title.text = (title.text or "") + mark
    for link in channel.findall(f"{{{ATOM}}}link"):
        if link.get("rel") == "self":
            link.set("href", feed_url)
        elif link.get("rel") in ("hub", "next", "prev", "first", "last"):
            channel.remove(link)  # WebSub hubs and paging belong to the upstream feed
    for tag in (f"{{{ITUNES}}}new-feed-url", f"{{{PODCAST}}}guid"):
        for element in channel.findall(tag):
            channel.remove(element)
    for item in list(channel.iterfind("item")):
        enclosure = item.find("enclosure")
        if enclosure is None or not (enclosure.get("url") or "").strip():
            continue
        upstream_url = enclosure.get("url").strip()
        guid = (item.findtext("guid") or "").strip() or upstream_url
        episode = ready.get(guid)
        if episode is None:
            coming = waiting.get(guid)
            if coming is not None:
                enclosure.set("url", coming.audio_url)
                enclosure.set(
                    "length", "0"
                )  # not known until it is cut ("0": unknown, as RSS feeds write it)
                enclosure.set("type", coming.type)
                _pin_guid(item, guid)
                for element in item.findall(f"{{{ITUNES}}}duration"):  # upstream's counts the ads
                    item.remove(element)
                _old_timeline_removed(item, upstream_url)
            elif not list_pending:
                channel.remove(item)
            continue
        enclosure.set("url", episode.audio_url)
        enclosure.set("length", str(episode.length))
        enclosure.set("type", episode.type)
        _pin_guid(item, guid)
        duration = item.find(f"{{{ITUNES}}}duration")
        if duration is None:
            duration = etree.SubElement(item, f"{{{ITUNES}}}duration")
        duration.text = format_duration(episode.duration)
        upstream_transcripts = {
            transcript_format(t.get("type"), (t.get("url") or "").strip()): dict(t.attrib)
            for t in reversed(item.findall(f"{{{PODCAST}}}transcript"))
        }
        _old_timeline_removed(item, upstream_url)
        for url, fmt in episode.transcripts:  # re-timed: upstream's attributes (language, rel) kept
            transcript = etree.SubElement(item, f"{{{PODCAST}}}transcript")
            for key, value in {
                **upstream_transcripts.get(fmt, {}),
                "url": url,
                "type": CONTENT_TYPES[fmt],
            }.items():
                transcript.set(key, value)
        chapters = etree.SubElement(item, f"{{{PODCAST}}}chapters")
        chapters.set("url", episode.chapters_url)
        chapters.set("type", "application/json+chapters")
    etree.cleanup_namespaces(root, top_nsmap={"podcast": PODCAST, "itunes": ITUNES})
    return etree.tostring(root.getroottree(), xml_declaration=True, encoding="UTF-8")
