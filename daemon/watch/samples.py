"""Which sample an image belongs to (DESIGN: the first folder below the watch root)."""

from __future__ import annotations

import os
import re
from pathlib import Path

UNSORTED = "unsorted"


def as_text(name: str) -> str:
    """A file name as text the store can hold. Names that are not valid UTF-8
    (a share mounted with another charset, files from an old Windows PC) come
    from the OS with surrogate escapes, which SQLite refuses: their undecodable
    bytes are written as \\xNN instead. `locate` finds the file again."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return os.fsencode(name).decode("utf-8", "backslashreplace")


def locate(root: Path, rel: str) -> Path:
    """The file behind a stored relative path (the inverse of as_text)."""
    path = Path(root) / rel
    if "\\x" not in rel or os.path.lexists(path):
        return path
    folder = Path(root)
    for part in rel.split("/"):
        candidate = folder / part
        if not os.path.lexists(candidate):
            try:
                candidate = next((folder / n for n in os.listdir(folder) if as_text(n) == part), candidate)
            except OSError:
                pass
        folder = candidate
    return folder


def relative_path(path: Path, root: Path) -> str | None:
    """The path relative to the watch root with / separators (as_text), or None outside it."""
    try:
        return as_text(Path(path).resolve().relative_to(Path(root).resolve()).as_posix())
    except ValueError:
        return None


def sample_of(path: Path, root: Path, pattern: str | None = None) -> str:
    """The sample name. A file outside the watch root (psdwatch process on any
    file) is named after its own folder, the closest thing to a sample it has."""
    rel = relative_path(path, root)
    if rel is None:
        return Path(path).resolve().parent.name or UNSORTED
    if pattern:
        match = re.search(pattern, rel)
        if match and match.groupdict().get("sample"):
            return match.group("sample")
    parts = rel.split("/")
    return parts[0] if len(parts) > 1 else UNSORTED
