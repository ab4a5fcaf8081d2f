"""The status page of ``adcut serve`` (each feed's ad-free URL, refresh state and episodes) and the same as JSON
for ``adcut feed list --json``."""

from __future__ import annotations

import html

from adcut.serve.paths import DataDir
from adcut.serve.store import DONE, Store
from adcut.serve.urls import feed_url
from adcut.serve.worker import episode_folder, original_audio


def _seconds(value: float | None) -> str:
    if value is None:
        return ""
    total = int(round(value))
    return f"{total // 60}:{total % 60:02d}"


STATUS_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:64em;padding:0 1em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em}
table{border-collapse:collapse;width:100%;margin:.5em 0 1.5em}
td,th{border-bottom:1px solid #e3e3e3;padding:.35em .5em;text-align:left;vertical-align:top}
th{font-weight:600;color:#555;font-size:.9em}td.num{text-align:right;font-variant-numeric:tabular-nums}
.state{display:inline-block;border-radius:.8em;padding:0 .6em;font-size:.85em;background:#eee}
.state.done{background:#dff3e0;color:#155a1c}.state.failed{background:#fbe1e1;color:#8a1111}
.state.downloading,.state.processing{background:#e1ecfb;color:#123f7a}
.reason{color:#8a1111;font-size:.9em}.warn{color:#8a1111}
code{font-size:.85em;word-break:break-all;background:#f5f5f5;padding:.1em .3em;border-radius:.2em}
button{font:inherit;font-size:.85em}form{margin:0;display:inline}.actions{white-space:nowrap}
.note{color:#555;font-size:.9em}
"""


def status_html(store: Store, base: str, token: str, data: DataDir | None = None) -> str:
    """The status page: each feed's ad-free URL, refresh state and episodes (state, reason, ad time removed)."""
    esc = html.escape
    busy = False
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>adcut serve</title>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<style>{STATUS_STYLE}</style></head><body>",
        "<h1>adcut serve: ad-free feeds</h1>",
    ]
    feeds = store.feeds()
    if not feeds:
        parts.append("<p>No feeds yet: <code>adcut feed add URL</code></p>")
    for feed in feeds:
        counts = store.counts(feed.id)
        url = feed_url(base, feed.name, token)
        parts.append(f"<h2 id='feed-{esc(feed.name)}'>{esc(feed.name)}</h2>")
        parts.append(
            f"<p>Subscribe in your podcast app: <a href='{esc(url)}'><code>{esc(url)}</code></a><br>"
            f"Upstream: <code>{esc(feed.url)}</code>"
        )
        if feed.fetch_error:
            parts.append(
                f"<br><span class='warn'>Last refresh failed: {esc(feed.fetch_error)} "
                "(the last good copy is served)</span>"
            )
        summary = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()) if state != "new")
        removed = sum(e.removed or 0.0 for e in store.episodes(feed.id) if e.state == DONE)
        parts.append(
            f"<br>Episodes: {esc(summary) or 'none queued yet'}; ad time removed {_seconds(removed) or '0:00'}</p>"
        )
        parts.append(
            "<table><tr><th>episode</th><th>state</th><th>ads removed</th><th>ad-free length</th><th></th></tr>"
        )
        for episode in store.episodes(feed.id):
            if episode.state == "new":
                continue
            busy = busy or episode.state in ("queued", "downloading", "processing")
            label = episode.state
            if episode.state == DONE and store.job_state(episode.id) in ("queued", "leased"):
                label, busy = "done, re-cut queued", True
            reason = f"<div class='reason'>{esc(episode.reason)}</div>" if episode.reason else ""
            title = esc(episode.title or episode.guid)
            if episode.state == DONE and episode.audio_name:
                title = f"<a href='/audio/{esc(episode.audio_name)}?token={esc(token)}'>{title}</a>"
            action = ""
            if data is not None and original_audio(data, episode.id) is not None:
                action += (
                    f"<form method='post' action='/review/{episode.id}?token={esc(token)}' target='_blank'>"
                    "<button title='check the ads found in the labeller; save, then re-cut'>review</button></form>"
                )
                if (episode_folder(data, episode.id) / "episode.txt").exists():
                    reason += "<div class='note'>cut from your reviewed labels</div>"
            if episode.state in (DONE, "failed"):
                action += (
                    f"<form method='post' action='/recut/{episode.id}?token={esc(token)}'>"
                    "<button>re-cut</button></form>"
                )
            parts.append(
                f"<tr id='episode-{episode.id}'><td>{title}</td>"
                f"<td><span class='state {esc(episode.state)}'>{esc(label)}</span>{reason}</td>"
                f"<td class='num'>{_seconds(episode.removed)}</td><td class='num'>{_seconds(episode.duration)}</td>"
                f"<td class='actions'>{action}</td></tr>"
            )
        parts.append("</table>")
    if busy:  # follow the work without reloading by hand
        parts.insert(1, "<meta http-equiv='refresh' content='5'>")
    parts.append("</body></html>")
    return "".join(parts)


def json_status(store: Store, base: str, token: str) -> list[dict]:
    """What ``adcut feed list --json`` prints."""
    rows = []
    for feed in store.feeds():
        counts = store.counts(feed.id)
        rows.append(
            {
                "name": feed.name,
                "upstream": feed.url,
                "url": feed_url(base, feed.name, token),
                "model": feed.model,
                "processed": counts.get(DONE, 0),
                "queued": sum(counts.get(s, 0) for s in ("queued", "downloading", "processing")),
                "failed": counts.get("failed", 0),
                "last_error": feed.fetch_error,
            }
        )
    return rows
