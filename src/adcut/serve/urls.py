"""The addresses of ``adcut serve``: where it listens by default, and the feed and status URLs it hands out."""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:  # only its type: --help reads the defaults here without opening SQLite
    from adcut.serve.store import Store

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8766
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def is_loopback(host: str) -> bool:
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def feed_url(base: str, name: str, token: str) -> str:
    return f"{base.rstrip('/')}/feed/{quote(name)}.xml?token={token}"


def status_url(base: str, token: str) -> str:
    return f"{base.rstrip('/')}/?token={token}"


def public_base(store: Store) -> str:
    return store.setting("public_url") or f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
