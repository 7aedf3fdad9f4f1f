"""Which sample an image belongs to (DESIGN: the first folder below the watch root)."""

from __future__ import annotations

import re
from pathlib import Path

UNSORTED = "unsorted"


def relative_path(path: Path, root: Path) -> str | None:
    """The path relative to the watch root with / separators, or None outside it."""
    try:
        return Path(path).resolve().relative_to(Path(root).resolve()).as_posix()
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
