"""Files written whole or not at all (temporary name, then rename), and text files read with one clear error."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from adcut.errors import AdcutError, LabelError, OutputError


def read_text_file(path: Path, what: str = "label file", error: type[AdcutError] = LabelError) -> str:
    """A UTF-8 text file's contents (a BOM is dropped); every failure is one ``error`` naming ``what``."""
    try:
        return Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except UnicodeDecodeError:
        raise error(f"{path}: not a text {what} (not UTF-8)") from None
    except OSError as problem:
        raise error(f"{path}: cannot read {what} ({problem.strerror})") from None


@contextmanager
def atomic_write(path: Path, what: str = "") -> Iterator[Path]:
    """A temporary path beside ``path`` to write to; when the block ends, that file replaces ``path`` whole.

    Readers see the old file or the new one, never part of one. When the block raises, or writing
    fails, the temporary file is removed and ``path`` keeps what it had; an OSError becomes one
    OutputError line naming ``path`` (and ``what`` it is, e.g. "checkpoint").
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        yield tmp
        with open(tmp, "rb") as handle:  # the data is on disk before the name points at it
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        what = f" {what}" if what else ""
        raise OutputError(f"{path}: cannot write{what} ({error.strerror or error})") from None
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` (UTF-8, newlines as given) through :func:`atomic_write`."""
    with atomic_write(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)


def atomic_write_bytes(path: Path, data: bytes, what: str = "") -> None:
    """Write ``data`` to ``path`` through :func:`atomic_write`."""
    with atomic_write(path, what) as tmp:
        tmp.write_bytes(data)
