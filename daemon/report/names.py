"""File names of the reports: safe on any file system and share, stable per sample."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from pathlib import Path

THUMBS = "thumbs"
VIEWS = "views"  # the frame at up to 2048 px with its outlines, one click from the thumbnail


def sample_slug(sample: str) -> str:
    """A file name stem for a sample that is safe on any file system and share.

    The readable part keeps ASCII letters and digits (accents folded, the rest
    turned into '-'); a hash of the exact name is appended so that samples that
    fold to the same text ("Pt/Al2O3" and "Pt Al2O3", "a" and "A" on a
    case-insensitive SMB share, NFC and NFD spellings) never share a file.
    """
    folded = unicodedata.normalize("NFKD", sample).encode("ascii", "ignore").decode("ascii")
    readable = re.sub(r"[^A-Za-z0-9]+", "-", folded).strip("-")[:48].strip("-") or "sample"
    digest = hashlib.sha256(sample.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{readable}-{digest}"


def sample_page_name(sample: str) -> str:
    return f"{sample_slug(sample)}.html"


def sample_csv_name(sample: str) -> str:
    return f"{sample_slug(sample)}.csv"


def sample_archive_name(sample: str, block: int) -> str:
    """The page listing the images of a large sample's block (1-based) of older images."""
    return f"{sample_slug(sample)}-images-{block}.html"


def thumbnail_name(sha256: str) -> str:
    """Thumbnails are named by content: a duplicate, or a promoted duplicate
    that inherits the particles of the same bytes, shows the same picture, and
    the worker can write it before the image's row exists."""
    return f"{THUMBS}/{sha256[:24]}.png"


def thumbnail_path(reports_dir: Path, sha256: str) -> Path:
    """Where the worker writes the thumbnail of an image with this content."""
    return Path(reports_dir) / thumbnail_name(sha256)


def view_name(sha256: str) -> str:
    """The large outlined view, named by content like the thumbnail."""
    return f"{VIEWS}/{sha256[:24]}.jpg"
