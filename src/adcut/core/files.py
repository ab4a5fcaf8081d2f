"""Files written whole or not at all (temporary name, then rename), and text files read with one clear error."""

from __future__ import annotations
import os
from pathlib import Path
from adcut.errors import AdcutError, LabelError


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


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never a half-written file."""
    from adcut.errors import OutputError

    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as error:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write ({error.strerror or error})") from None
