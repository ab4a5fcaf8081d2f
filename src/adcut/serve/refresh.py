"""One refresh of a feed: fetch upstream (conditionally), keep it as the last good copy, queue new episodes.

When upstream is down, or sends HTML, garbage or a hostile document, the reason is recorded on
the feed and the last good copy keeps being served.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from adcut.core.files import atomic_write_bytes
from adcut.errors import AdcutError
from adcut.serve.feed import items, parse_feed
from adcut.serve.fetch import fetch_feed
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


def upstream_copy(data: DataDir, feed: Feed) -> Path:
    """The last good upstream XML of ``feed``."""
    return data.feeds / f"{feed.id}.xml"


def refresh_feed(store: Store, data: DataDir, feed: Feed, episodes: int = DEFAULT_EPISODES,
                 timeout: float = 30.0) -> RefreshResult:
    result = RefreshResult(feed.name)
    copy = upstream_copy(data, feed)
    have_copy = copy.exists()
    try:
        response = fetch_feed(feed.url, feed.etag if have_copy else None, feed.last_modified if have_copy else None,
                              timeout=timeout)
        if response.body is not None:
            found = items(parse_feed(response.body, feed.url))
            atomic_write_bytes(copy, response.body, "feed copy")
            store.upsert_episodes(feed.id, [{"guid": i.guid, "title": i.title, "url": i.url, "type": i.type,
                                              "chapters": i.chapters} for i in found])
            result.changed = True
        store.record_fetch(feed.id, etag=response.etag, last_modified=response.last_modified)
    except AdcutError as error:
        result.error = str(error)
        store.record_fetch(feed.id, error=result.error, ok=False)
        log.warning("%s: %s", feed.name, error)
    result.queued = queue_newest(store, feed, episodes)
    result.episodes = len(store.episodes(feed.id))
    return result


def queue_newest(store: Store, feed: Feed, count: int) -> int:
    """Queue the ``count`` newest episodes that were never queued; how many were."""
    queued = 0
    for episode in store.episodes(feed.id)[:max(0, count)]:
        if episode.state == NEW and store.enqueue(episode.id):
            queued += 1
    return queued


def prune(store: Store, data: DataDir, feed: Feed, keep: int) -> int:
    """Delete the files of the episodes older than the ``keep`` newest (0: keep all); how many were deleted.

    Their ad-free audio, chapters and kept original go; they leave the ad-free feed (apps keep what
    they downloaded). An episode with a job under way is left alone.
    """
    import shutil

    from adcut.serve.worker import episode_folder

    if keep <= 0:
        return 0
    pruned = 0
    for episode in store.episodes(feed.id)[keep:]:
        if episode.state == NEW or store.job_state(episode.id) in ("queued", "leased"):
            continue
        if episode.audio_name:
            for path in (data.audio / episode.audio_name, data.audio / f"{episode.audio_name}.chapters.json"):
                path.unlink(missing_ok=True)
        shutil.rmtree(episode_folder(data, episode.id), ignore_errors=True)
        store.forget_episode(episode.id)
        pruned += 1
    return pruned
