"""Where ``adcut serve`` keeps its state: ``--data DIR``, else the platform's user data folder."""

from __future__ import annotations

import os
from pathlib import Path

DB_NAME = "adcut-serve.sqlite3"


def default_data_dir() -> Path:
    """The platform's user data folder for adcut (platformdirs when installed, else ~/.local/share/adcut)."""
    env = os.environ.get("ADCUT_DATA")
    if env:
        return Path(env)
    try:
        import platformdirs

        return Path(platformdirs.user_data_dir("adcut", appauthor=False))
    except ImportError:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(base) / "adcut"


class DataDir:
    """The folders inside the data folder; created on first use."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root else default_data_dir()

    @property
    def db(self) -> Path:
        return self.root / DB_NAME

    @property
    def feeds(self) -> Path:  # last good upstream XML per feed
        return self.root / "feeds"

    @property
    def audio(self) -> Path:  # ad-free episodes and their chapters
        return self.root / "audio"

    @property
    def downloads(self) -> Path:  # enclosures being downloaded (.part) and downloaded
        return self.root / "downloads"

    @property
    def models(self) -> Path:  # the feeds' models, stored by content hash
        return self.root / "models"

    def create(self) -> DataDir:
        from adcut.errors import OutputError

        try:
            for folder in (self.root, self.feeds, self.audio, self.downloads, self.models):
                folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise OutputError(
                f"{self.root}: cannot create the data folder ({error.strerror or error})"
            ) from None
        return self
