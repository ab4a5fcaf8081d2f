"""One refresh of a feed: fetch upstream (conditionally), keep it as the last good copy, queue new episodes.

When upstream is down, or sends HTML, garbage or a hostile document, the reason is recorded on
the feed and the last good copy keeps being served.

A feed that moved for good is followed: a permanent redirect (301 or 308, every hop up to the new
address; a 302 or 307 is temporary and changes nothing) or an ``itunes:new-feed-url`` naming another
address (used once that address answers with a feed) replaces the stored upstream URL.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from adcut.core.files import atomic_write_bytes
from adcut.errors import AdcutError
from adcut.serve.feed import ITUNES, items, parse_feed
from adcut.serve.fetch import FeedResponse, check_url, fetch_feed
from adcut.serve.paths import DataDir
from adcut.serve.store import NEW, Feed, Store

log = logging.getLogger(__name__)

DEFAULT_EPISODES = 3


@dataclass
class RefreshResult:
    feed: str
    changed: bool = False
    episodes: int = 0
    queued: int = 0
    error: str | None = None
    moved: str | None = None  # the upstream URL it moved to (and is stored under now)


def upstream_copy(data: DataDir, feed: Feed) -> Path:
    """The last good upstream XML of ``feed``."""
    return data.feeds / f"{feed.id}.xml"


def refresh_feed(
    store: Store, data: DataDir, feed: Feed, episodes: int = DEFAULT_EPISODES, timeout: float = 30.0
) -> RefreshResult:
    result = RefreshResult(feed.name)
    copy = upstream_copy(data, feed)
    have_copy = copy.exists()
    try:
        url = feed.url
        response = fetch_feed(
            url, feed.etag if have_copy else None, feed.last_modified if have_copy else None, timeout=timeout
        )
        root = parse_feed(response.body, url) if response.body is not None else None
        if response.moved_to and response.moved_to != url:
            url = response.moved_to  # moved for good: only now that it answered (with a feed, or 304)
        declared = root.find(f"channel/{{{ITUNES}}}new-feed-url") if root is not None else None
        if declared is not None and (declared.text or "").strip() not in ("", url, feed.url):
            followed = _follow_new_feed_url((declared.text or "").strip(), url, feed.name, timeout)
            if followed is not None:
                url, response = followed
        if url != feed.url:
            store.set_feed_url(feed.id, url)
            result.moved = url
            log.warning("%s: the upstream feed moved to %s", feed.name, url)
        if response.body is not None:
            found = items(parse_feed(response.body, url))
            atomic_write_bytes(copy, response.body, "feed copy")
            store.upsert_episodes(
                feed.id,
                [
                    {
                        "guid": i.guid,
                        "title": i.title,
                        "url": i.url,
                        "type": i.type,
                        "chapters": i.chapters,
                        "transcripts": i.transcripts,
                    }
                    for i in found
                ],
            )
            result.changed = True
        store.record_fetch(feed.id, etag=response.etag, last_modified=response.last_modified)
    except AdcutError as error:
        result.error = str(error)
        store.record_fetch(feed.id, error=result.error, ok=False)
        log.warning("%s: %s", feed.name, error)
    result.queued = queue_newest(store, feed, episodes)
    result.episodes = len(store.episodes(feed.id))
    return result


def _follow_new_feed_url(new: str, old: str, name: str, timeout: float) -> tuple[str, FeedResponse] | None:
    """``itunes:new-feed-url``: the new address and its answer once it serves a feed; None to stay (logged)."""
    try:
        response = fetch_feed(check_url(new), timeout=timeout)
        root = parse_feed(response.body or b"", new)
    except AdcutError as error:
        log.warning("%s: the feed names a new address, not followed: %s", name, error)
        return None
    declared = (root.findtext(f"channel/{{{ITUNES}}}new-feed-url") or "").strip()
    if declared == old:  # the two point at each other: stay rather than go back and forth
        log.warning("%s: %s and %s each name the other as the new feed; staying", name, old, new)
        return None
    return response.moved_to or new, response


def queue_newest(store: Store, feed: Feed, count: int) -> int:
    """Queue the ``count`` newest episodes that were never queued; how many were."""
    queued = 0
    for episode in store.episodes(feed.id)[: max(0, count)]:
        if episode.state == NEW and store.enqueue(episode.id):
            queued += 1
    return queued


def prune(store: Store, data: DataDir, feed: Feed, keep: int) -> int:
    """Delete the files of the episodes older than the ``keep`` newest (0: keep all); how many were deleted.

    Their ad-free audio, chapters and kept original go; they leave the ad-free feed (apps keep what
    they downloaded). An episode with a job under way is left alone.
    """
    import shutil

    from adcut.serve.worker import episode_folder, served_files

    if keep <= 0:
        return 0
    pruned = 0
    for episode in store.episodes(feed.id)[keep:]:
        if episode.state == NEW or store.job_state(episode.id) in ("queued", "leased"):
            continue
        if episode.audio_name:
            for path in served_files(data, episode.audio_name):
                path.unlink(missing_ok=True)
        shutil.rmtree(episode_folder(data, episode.id), ignore_errors=True)
        store.forget_episode(episode.id)
        pruned += 1
    return pruned
