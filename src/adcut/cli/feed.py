"""``adcut feed``: the podcast feeds that ``adcut serve`` makes ad-free (add, list, remove, refresh, set-model)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from adcut.errors import AdcutError


def add_data_argument(parser) -> None:
    parser.add_argument(
        "--data",
        metavar="DIR",
        default=None,
        help="the server's data folder (default: the platform's user data folder, e.g. ~/.local/share/adcut)",
    )


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "feed",
        help="add, list, remove or refresh the podcast feeds that 'adcut serve' makes ad-free",
        description=(
            "Manage the upstream podcast feeds that 'adcut serve' follows. Each gets an ad-free feed URL "
            "to paste into a podcast app; its newest episodes are downloaded, their ads found and cut."
        ),
    )
    sub = parser.add_subparsers(dest="feed_command", metavar="SUBCOMMAND")

    add = sub.add_parser(
        "add",
        help="follow an upstream feed; prints the ad-free feed's URL",
        description="Fetch the feed at URL (it must be an RSS podcast feed), register it, and "
        "print the ad-free feed's URL for your podcast app.",
    )
    add.add_argument("url", metavar="URL", help="the podcast's RSS feed (http:// or https://)")
    add.add_argument(
        "--name", default=None, help="short name used in the URL (default: from the feed's title)"
    )
    add.add_argument(
        "--model",
        "-m",
        default=None,
        help="checkpoint to cut this feed with (default: the newest in ./models/); a copy is kept by "
        "content hash, so retraining changes nothing until 'adcut feed set-model'",
    )
    add_data_argument(add)
    add.set_defaults(func=run_add)

    listing = sub.add_parser("list", help="the feeds, their ad-free URLs and episode counts")
    listing.add_argument("--json", action="store_true", help="print JSON")
    add_data_argument(listing)
    listing.set_defaults(func=run_list)

    remove = sub.add_parser("remove", help="stop following a feed and delete its ad-free files")
    remove.add_argument("name", metavar="NAME")
    add_data_argument(remove)
    remove.set_defaults(func=run_remove)

    refresh = sub.add_parser(
        "refresh",
        help="fetch upstream now and queue the newest episodes",
        description="Fetch the feed (or every feed) now and queue its newest episodes; a running "
        "'adcut serve' processes them.",
    )
    refresh.add_argument("name", metavar="NAME", nargs="?", default=None)
    refresh.add_argument(
        "--episodes",
        type=int,
        default=None,
        metavar="K",
        help="queue the K newest episodes (default 3; more to process older ones)",
    )
    add_data_argument(refresh)
    refresh.set_defaults(func=run_refresh)

    set_model = sub.add_parser("set-model", help="cut a feed's episodes with another model from now on")
    set_model.add_argument("name", metavar="NAME")
    set_model.add_argument(
        "model",
        metavar="MODEL",
        nargs="?",
        default=None,
        help="checkpoint (default: the newest in ./models/)",
    )
    set_model.add_argument("--recut", action="store_true", help="also re-cut the episodes already processed")
    add_data_argument(set_model)
    set_model.set_defaults(func=run_set_model)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def _open(args):
    from adcut.serve.paths import DataDir
    from adcut.serve.store import Store

    data = DataDir(args.data).create()
    return data, Store(data.db)


def store_model(data, model: str | None) -> str:
    """Copy the checkpoint into the data folder under its content hash; the copy's path."""
    import hashlib
    import shutil

    from adcut.core.files import atomic_write
    from adcut.models.checkpoint import load_checkpoint, newest_model

    source = Path(model) if model else newest_model()
    load_checkpoint(source)  # a clear error now rather than at the first episode
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    target = data.models / f"{digest}{source.suffix}"
    if not target.exists():
        with atomic_write(target, "model copy") as tmp:
            shutil.copyfile(source, tmp)
    return str(target)


def slug(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9]+", "-", text).strip("-").lower()[:60]
    return name or "feed"


def run_add(args) -> int:
    from urllib.parse import urlsplit

    from adcut.serve.feed import channel_title, parse_feed
    from adcut.serve.fetch import check_url, fetch_feed
    from adcut.serve.refresh import refresh_feed
    from adcut.serve.urls import feed_url, public_base

    data, store = _open(args)
    url = check_url(args.url)
    model = store_model(data, args.model)
    response = fetch_feed(url)
    root = parse_feed(response.body or b"", url)
    if (
        response.moved_to and response.moved_to != url
    ):  # registered under its new address, so a re-add is caught
        print(f"the feed moved permanently: following {response.moved_to}")
        url = response.moved_to
    name = args.name or slug(channel_title(root) or urlsplit(url).hostname or "feed")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}", name):
        raise AdcutError(f"--name {name!r}: use letters, digits, '.', '_' and '-' only")
    feed = store.add_feed(name, url, model)
    result = refresh_feed(store, data, feed)
    print(f"added {feed.name}: {result.episodes} episodes, the newest {result.queued} queued")
    if result.moved:
        print(f"the feed moved permanently: following {result.moved}")
    print(
        f"ad-free feed (paste into your podcast app while 'adcut serve' runs):\n  "
        f"{feed_url(public_base(store), feed.name, store.token())}"
    )
    return 0


def run_list(args) -> int:
    from adcut.serve.status import json_status
    from adcut.serve.urls import public_base

    _, store = _open(args)
    rows = json_status(store, public_base(store), store.token())
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no feeds yet: adcut feed add URL")
    for row in rows:
        print(f"{row['name']}: {row['processed']} processed, {row['queued']} queued, {row['failed']} failed")
        print(f"  upstream: {row['upstream']}")
        print(f"  ad-free:  {row['url']}")
        if row["last_error"]:
            print(f"  last refresh failed: {row['last_error']}")
    return 0


def run_remove(args) -> int:
    from adcut.serve.refresh import upstream_copy

    data, store = _open(args)
    feed = store.feed(args.name)
    import shutil

    from adcut.serve.worker import episode_folder, served_files

    episodes = store.episodes(feed.id)
    names = [e.audio_name for e in episodes if e.audio_name]
    store.remove_feed(args.name)
    for episode in episodes:
        shutil.rmtree(episode_folder(data, episode.id), ignore_errors=True)
    for name in names:
        for path in served_files(data, name):
            path.unlink(missing_ok=True)
    upstream_copy(data, feed).unlink(missing_ok=True)
    print(f"removed {feed.name} ({len(names)} ad-free episodes deleted)")
    return 0


def run_refresh(args) -> int:
    from adcut.serve.refresh import DEFAULT_EPISODES, refresh_feed

    data, store = _open(args)
    feeds = [store.feed(args.name)] if args.name else store.feeds()
    failed = 0
    for feed in feeds:
        result = refresh_feed(
            store, data, feed, args.episodes if args.episodes is not None else DEFAULT_EPISODES
        )
        line = f"{feed.name}: {result.episodes} episodes, {result.queued} newly queued"
        if result.moved:
            line += f"; the feed moved permanently to {result.moved}"
        if result.error:
            failed += 1
            line += f"; refresh failed: {result.error} (the last good copy is kept)"
        print(line)
    return 1 if failed else 0


def run_set_model(args) -> int:
    data, store = _open(args)
    feed = store.feed(args.name)
    model = store_model(data, args.model)
    store.set_model(feed.name, model)
    recut = 0
    if args.recut:
        for episode in store.episodes(feed.id):
            if episode.state == "done" and store.enqueue(episode.id, again=True):
                recut += 1
    print(f"{feed.name}: model {model}" + (f"; {recut} episodes queued to be re-cut" if args.recut else ""))
    return 0
