"""The full-resolution view of one image as a small page, not a bare JPEG.

A click on a thumbnail used to open the outlined frame as a JPEG named by its
hash: no file name, no legend saying what amber and blue mean, no way back but
the browser's. The page names the file and its sample, says what the outlines
mean, shows the frame and links back to the sample's table. Static like the
other pages (no scripts). It depends only on the image's path and content, so
it is written once (beside the JPEG, in views/) and a page rebuild costs one
stat per image for it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ...pipeline.io.files import write_atomic
from .names import VIEWS
from .thumbnails import EXCLUDED_BGR, MEASURED_BGR


def view_page_name(path: str, view_jpeg: str) -> str:
    """views/<content>-<path>.html: one page per file (a duplicate, same content
    under another name, gets its own page naming it)."""
    digest = hashlib.sha256(path.encode("utf-8", "surrogatepass")).hexdigest()[:10]
    return f"{VIEWS}/{Path(view_jpeg).stem}-{digest}.html"


def _css(bgr: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*bgr[::-1])


def ensure_view_page(reports_dir: Path, sample: str, sample_page: str, row: dict, view_jpeg: str,
                     render) -> str:
    """The page's href (relative to reports_dir), written if it is not there yet.
    `render` renders a template with the pages' common context (report.py's);
    row: the sample table's row (path, name, n)."""
    href = view_page_name(row["path"], view_jpeg)
    target = Path(reports_dir) / href
    if not target.is_file():
        html = render("view.html", root="../", sample=sample, back=sample_page, name=row["name"],
                      path=row["path"], n=row["n"], image=Path(view_jpeg).name,
                      measured_color=_css(MEASURED_BGR), excluded_color=_css(EXCLUDED_BGR))
        write_atomic(target, html)
    return href
