"""The server's state in one SQLite file: feeds, their episodes, the job queue, settings.

The queue is a plain ``jobs`` table with leases rather than huey's SQLite backend: a worker takes a
job by setting ``lease_until`` in one transaction and renews it while it works; a job whose lease ran
out (its worker was killed, even with ``kill -9``, or the machine went down) is simply taken again,
at most ``MAX_ATTEMPTS`` times. huey's SQLite storage deletes a task when a consumer dequeues it, so
a consumer killed mid-task loses it; and a table of our own joins with the episodes for the status
page and adds no dependency.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from adcut.errors import AdcutError, OutputError

MAX_ATTEMPTS = 3
LEASE_SECONDS = 120.0

# Episode states, in the order an episode goes through them.
NEW, QUEUED, DOWNLOADING, PROCESSING, DONE, FAILED = (
    "new",
    "queued",
    "downloading",
    "processing",
    "done",
    "failed",
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS feeds (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    url TEXT NOT NULL,
    model TEXT,
    etag TEXT,
    last_modified TEXT,
    fetched_at REAL,
    fetch_error TEXT,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS episodes (
    id INTEGER PRIMARY KEY,
    feed_id INTEGER NOT NULL REFERENCES feeds(id) ON DELETE CASCADE,
    guid TEXT NOT NULL,
    title TEXT,
    upstream_url TEXT NOT NULL,
    upstream_type TEXT,
    chapters_url TEXT,
    transcripts TEXT,
    position INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'new',
    reason TEXT,
    revision INTEGER NOT NULL DEFAULT 0,
    audio_name TEXT,
    audio_size INTEGER,
    audio_type TEXT,
    duration REAL,
    removed REAL,
    updated REAL,
    UNIQUE (feed_id, guid)
);
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY,
    episode_id INTEGER NOT NULL UNIQUE REFERENCES episodes(id) ON DELETE CASCADE,
    state TEXT NOT NULL DEFAULT 'queued',
    lease_until REAL,
    owner TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state, lease_until);
CREATE INDEX IF NOT EXISTS episodes_audio ON episodes (audio_name);
"""


@dataclass(frozen=True)
class Feed:
    id: int
    name: str
    url: str
    model: str | None
    etag: str | None
    last_modified: str | None
    fetched_at: float | None
    fetch_error: str | None


@dataclass(frozen=True)
class Episode:
    id: int
    feed_id: int
    guid: str
    title: str | None
    upstream_url: str
    upstream_type: str | None
    chapters_url: str | None
    position: int
    state: str
    reason: str | None
    revision: int
    audio_name: str | None
    audio_size: int | None
    audio_type: str | None
    duration: float | None
    removed: float | None
    transcripts: tuple[tuple[str, str], ...] = ()  # upstream (url, format) of its timed transcripts


@dataclass(frozen=True)
class Job:
    id: int
    episode_id: int
    attempts: int


class Store:
    """One SQLite database; each thread gets its own connection. Safe across processes (WAL)."""

    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._local = threading.local()
        try:
            db = self._connection()
            db.executescript(SCHEMA)
            columns = {row["name"] for row in db.execute("PRAGMA table_info(episodes)")}
            if "chapters_url" not in columns:  # a database made before chapters were followed
                db.execute("ALTER TABLE episodes ADD COLUMN chapters_url TEXT")
            if "transcripts" not in columns:  # made before transcripts were re-timed
                db.execute("ALTER TABLE episodes ADD COLUMN transcripts TEXT")
        except sqlite3.Error as error:
            raise OutputError(f"{self.path}: cannot set up the database ({error})") from None

    # ------------------------------------------------------------------ connections
    def _connection(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            try:
                db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
                db.row_factory = sqlite3.Row
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA foreign_keys=ON")
                db.execute("PRAGMA busy_timeout=30000")
            except sqlite3.Error as error:
                raise OutputError(f"{self.path}: cannot open the database ({error})") from None
            self._local.db = db
        return db

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (BEGIN IMMEDIATE): other writers wait; a full disk is one OutputError."""
        db = self._connection()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.OperationalError as error:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise OutputError(f"{self.path}: database write failed ({error})") from None

    def query(self, sql: str, params=()) -> list[sqlite3.Row]:
        return self._connection().execute(sql, params).fetchall()

    # ------------------------------------------------------------------ settings
    def setting(self, key: str, default: str | None = None) -> str | None:
        rows = self.query("SELECT value FROM settings WHERE key = ?", (key,))
        return rows[0]["value"] if rows else default

    def set_setting(self, key: str, value: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def token(self) -> str:
        """The secret that every feed, audio and status URL carries (made once, kept in the database)."""
        with self.transaction() as db:
            row = db.execute("SELECT value FROM settings WHERE key = 'token'").fetchone()
            if row:
                return row["value"]
            token = secrets.token_urlsafe(18)
            db.execute("INSERT INTO settings (key, value) VALUES ('token', ?)", (token,))
            return token

    # ------------------------------------------------------------------ feeds
    def add_feed(self, name: str, url: str, model: str | None) -> Feed:
        with self.transaction() as db:
            if db.execute("SELECT 1 FROM feeds WHERE name = ?", (name,)).fetchone():
                raise AdcutError(f"a feed named {name!r} exists already (choose another with --name)")
            if db.execute("SELECT 1 FROM feeds WHERE url = ?", (url,)).fetchone():
                raise AdcutError(f"{url}: this feed is added already")
            db.execute(
                "INSERT INTO feeds (name, url, model, created) VALUES (?, ?, ?, ?)",
                (name, url, model, time.time()),
            )
        return self.feed(name)

    def feeds(self) -> list[Feed]:
        return [_feed(row) for row in self.query("SELECT * FROM feeds ORDER BY name")]

    def feed(self, name: str) -> Feed:
        rows = self.query("SELECT * FROM feeds WHERE name = ?", (name,))
        if not rows:
            known = ", ".join(f.name for f in self.feeds()) or "none yet; add one with 'adcut feed add URL'"
            raise AdcutError(f"no feed named {name!r} (feeds: {known})")
        return _feed(rows[0])

    def feed_by_id(self, feed_id: int) -> Feed:
        return _feed(self.query("SELECT * FROM feeds WHERE id = ?", (feed_id,))[0])

    def remove_feed(self, name: str) -> Feed:
        feed = self.feed(name)
        with self.transaction() as db:
            db.execute("DELETE FROM feeds WHERE id = ?", (feed.id,))
        return feed

    def set_feed_url(self, feed_id: int, url: str) -> None:
        """The upstream feed moved for good (301/308, or ``itunes:new-feed-url``): follow it from now on."""
        with self.transaction() as db:
            db.execute("UPDATE feeds SET url = ? WHERE id = ?", (url, feed_id))

    def set_model(self, name: str, model: str) -> None:
        with self.transaction() as db:
            db.execute("UPDATE feeds SET model = ? WHERE name = ?", (model, name))

    def record_fetch(
        self,
        feed_id: int,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        error: str | None = None,
        ok: bool = True,
    ) -> None:
        with self.transaction() as db:
            if ok:
                db.execute(
                    "UPDATE feeds SET etag = ?, last_modified = ?, fetched_at = ?, fetch_error = NULL WHERE id = ?",
                    (etag, last_modified, time.time(), feed_id),
                )
            else:
                db.execute("UPDATE feeds SET fetch_error = ? WHERE id = ?", (error, feed_id))

    # ------------------------------------------------------------------ episodes
    def upsert_episodes(self, feed_id: int, items: list[dict]) -> None:
        """Record the upstream items (newest first); a known GUID keeps its state and files."""
        with self.transaction() as db:
            for position, item in enumerate(items):
                db.execute(
                    "INSERT INTO episodes (feed_id, guid, title, upstream_url, upstream_type, chapters_url, transcripts, "
                    "position, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(feed_id, guid) DO UPDATE SET title = excluded.title, "
                    "upstream_url = excluded.upstream_url, upstream_type = excluded.upstream_type, "
                    "chapters_url = excluded.chapters_url, transcripts = excluded.transcripts, position = excluded.position",
                    (
                        feed_id,
                        item["guid"],
                        item.get("title"),
                        item["url"],
                        item.get("type"),
                        item.get("chapters"),
                        json.dumps([list(t) for t in item.get("transcripts", ())]),
                        position,
                        time.time(),
                    ),
                )

    def episodes(self, feed_id: int | None = None) -> list[Episode]:
        if feed_id is None:
            rows = self.query("SELECT * FROM episodes ORDER BY feed_id, position")
        else:
            rows = self.query("SELECT * FROM episodes WHERE feed_id = ? ORDER BY position", (feed_id,))
        return [_episode(row) for row in rows]

    def episode(self, episode_id: int) -> Episode | None:
        rows = self.query("SELECT * FROM episodes WHERE id = ?", (episode_id,))
        return _episode(rows[0]) if rows else None

    def episode_by_audio(self, audio_name: str) -> Episode | None:
        rows = self.query("SELECT * FROM episodes WHERE audio_name = ?", (audio_name,))
        return _episode(rows[0]) if rows else None

    def feed_version(self, feed_id: int) -> tuple:
        """Changes whenever an episode of the feed changes (for caching its rewritten XML)."""
        row = self.query(
            "SELECT MAX(updated) AS u, COUNT(*) AS n, SUM(revision) AS r FROM episodes WHERE feed_id = ?",
            (feed_id,),
        )[0]
        return (row["u"], row["n"], row["r"])

    def counts(self, feed_id: int) -> dict[str, int]:
        rows = self.query(
            "SELECT state, COUNT(*) AS n FROM episodes WHERE feed_id = ? GROUP BY state", (feed_id,)
        )
        return {row["state"]: row["n"] for row in rows}

    def set_state(self, episode_id: int, state: str, reason: str | None = None) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE episodes SET state = ?, reason = ?, updated = ? WHERE id = ?",
                (state, reason, time.time(), episode_id),
            )

    def finish_episode(
        self,
        episode_id: int,
        *,
        audio_name: str,
        audio_size: int,
        audio_type: str,
        duration: float,
        removed: float,
        revision: int,
    ) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE episodes SET state = 'done', reason = NULL, audio_name = ?, audio_size = ?, audio_type = ?, "
                "duration = ?, removed = ?, revision = ?, updated = ? WHERE id = ?",
                (audio_name, audio_size, audio_type, duration, removed, revision, time.time(), episode_id),
            )
            db.execute(
                "UPDATE jobs SET state = 'done', lease_until = NULL WHERE episode_id = ?", (episode_id,)
            )

    def forget_episode(self, episode_id: int) -> None:
        """The episode's ad-free file is gone (retention): back to 'new', out of the feed, no job."""
        with self.transaction() as db:
            db.execute(
                "UPDATE episodes SET state = 'new', reason = NULL, audio_name = NULL, audio_size = NULL, "
                "duration = NULL, removed = NULL, updated = ? WHERE id = ?",
                (time.time(), episode_id),
            )
            db.execute("DELETE FROM jobs WHERE episode_id = ? AND state IN ('done', 'failed')", (episode_id,))

    def fail_episode(self, episode_id: int, reason: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE episodes SET state = 'failed', reason = ?, updated = ? WHERE id = ?",
                (reason, time.time(), episode_id),
            )
            db.execute(
                "UPDATE jobs SET state = 'failed', lease_until = NULL WHERE episode_id = ?", (episode_id,)
            )

    # ------------------------------------------------------------------ jobs
    def enqueue(self, episode_id: int, *, again: bool = False) -> bool:
        """Queue the episode unless it has a job already (``again``: also re-queue a finished or failed one)."""
        with self.transaction() as db:
            row = db.execute("SELECT state FROM jobs WHERE episode_id = ?", (episode_id,)).fetchone()
            if row and not (again and row["state"] in ("done", "failed")):
                return False
            db.execute(
                "INSERT INTO jobs (episode_id, state, attempts, created) VALUES (?, 'queued', 0, ?) "
                "ON CONFLICT(episode_id) DO UPDATE SET state = 'queued', attempts = 0, lease_until = NULL, owner = NULL",
                (episode_id, time.time()),
            )
            db.execute(
                "UPDATE episodes SET state = CASE WHEN state = 'done' THEN state ELSE 'queued' END, "
                "reason = NULL, updated = ? WHERE id = ?",
                (time.time(), episode_id),
            )
            return True

    def lease(self, owner: str, seconds: float = LEASE_SECONDS) -> Job | None:
        """Take the oldest queued job, or one whose lease ran out (its worker died); None when there is none.

        A job taken ``MAX_ATTEMPTS`` times without finishing is marked failed instead.
        """
        now = time.time()
        with self.transaction() as db:
            while True:
                row = db.execute(
                    "SELECT j.id, j.episode_id, j.attempts FROM jobs j JOIN episodes e ON e.id = j.episode_id "
                    "WHERE j.state = 'queued' OR (j.state = 'leased' AND j.lease_until < ?) "
                    "ORDER BY j.attempts, e.position, j.id LIMIT 1",
                    (now,),
                ).fetchone()
                if row is None:
                    return None
                if row["attempts"] >= MAX_ATTEMPTS:
                    db.execute(
                        "UPDATE jobs SET state = 'failed', lease_until = NULL WHERE id = ?", (row["id"],)
                    )
                    db.execute(
                        "UPDATE episodes SET state = 'failed', reason = ?, updated = ? WHERE id = ?",
                        (
                            f"gave up after {MAX_ATTEMPTS} attempts (the worker stopped each time)",
                            now,
                            row["episode_id"],
                        ),
                    )
                    continue
                db.execute(
                    "UPDATE jobs SET state = 'leased', lease_until = ?, owner = ?, attempts = attempts + 1 WHERE id = ?",
                    (now + seconds, owner, row["id"]),
                )
                return Job(row["id"], row["episode_id"], row["attempts"] + 1)

    def renew(self, job: Job, owner: str, seconds: float = LEASE_SECONDS) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE jobs SET lease_until = ? WHERE id = ? AND owner = ? AND state = 'leased'",
                (time.time() + seconds, job.id, owner),
            )

    def requeue(self, job: Job, owner: str) -> None:
        """Put a leased job back in the queue at once (its attempt counts)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE jobs SET state = 'queued', lease_until = NULL, owner = NULL WHERE id = ? AND owner = ?",
                (job.id, owner),
            )

    def release(self, owner: str) -> None:
        """Give back ``owner``'s leased jobs (a clean shutdown): queued again, the attempt not counted."""
        with self.transaction() as db:
            db.execute(
                "UPDATE jobs SET state = 'queued', lease_until = NULL, owner = NULL, attempts = MAX(attempts - 1, 0) "
                "WHERE owner = ? AND state = 'leased'",
                (owner,),
            )
            db.execute(
                "UPDATE episodes SET state = CASE WHEN audio_name IS NULL THEN 'queued' ELSE 'done' END "
                "WHERE id IN (SELECT episode_id FROM jobs WHERE state = 'queued') AND state IN ('downloading', 'processing')"
            )

    def job_state(self, episode_id: int) -> str | None:
        rows = self.query("SELECT state FROM jobs WHERE episode_id = ?", (episode_id,))
        return rows[0]["state"] if rows else None


def _feed(row: sqlite3.Row) -> Feed:
    return Feed(
        row["id"],
        row["name"],
        row["url"],
        row["model"],
        row["etag"],
        row["last_modified"],
        row["fetched_at"],
        row["fetch_error"],
    )


def _episode(row: sqlite3.Row) -> Episode:
    return Episode(
        row["id"],
        row["feed_id"],
        row["guid"],
        row["title"],
        row["upstream_url"],
        row["upstream_type"],
        row["chapters_url"],
        row["position"],
        row["state"],
        row["reason"],
        row["revision"],
        row["audio_name"],
        row["audio_size"],
        row["audio_type"],
        row["duration"],
        row["removed"],
        _transcripts(row["transcripts"]),
    )


def _transcripts(text: str | None) -> tuple[tuple[str, str], ...]:
    try:
        found = json.loads(text or "[]")
    except ValueError:
        return ()
    return tuple((str(t[0]), str(t[1])) for t in found if isinstance(t, list) and len(t) == 2)
