"""A file deleted from the share after it was measured: the real service keeps its
row and particles, marks it, and the sample's page says so."""

from __future__ import annotations

import cv2
import pytest

from psdwatch.daemon import store

from .conftest import classical_service, drop_frame, read_rows, start_service, wait_for

pytestmark = pytest.mark.slow


def test_a_measured_file_deleted_from_the_share_is_marked_not_forgotten(tmp_path):
    root, config, database = classical_service(tmp_path, "rescan_seconds = 1.0\n")
    share = root / "S"
    for seed in (1, 2):
        drop_frame(share, f"f{seed}", seed)
    service = start_service(config)

    def row(path: str) -> dict:
        return next(iter(read_rows(database, "SELECT * FROM images WHERE path = ?", (path,))), {})

    try:
        wait_for(lambda: database.is_file() and all(row(f"S/f{k}.tif").get("status") == "done" for k in (1, 2)),
                 60, "both files measured")
        n_before = row("S/f1.tif")["n_particles"]
        # each image's outlines at full size (2048 px at most), one click from its thumbnail
        views = sorted((tmp_path / "state" / "reports" / "views").glob("*.jpg"))
        assert len(views) == 2 and all(cv2.imread(str(v)).shape[:2] == (512, 512) for v in views)
        # the page follows the store (the report thread draws it once the queue is empty)
        pages = tmp_path / "state" / "reports"
        # each through its view page (name, legend, a link back), which shows the JPEG
        wait_for(lambda: any(all(f'href="views/{v.stem}-' in p.read_text() for v in views)
                             for p in pages.glob("S-*.html")), 30, "the page to link both views")
        assert all(any(v.name in page.read_text() for page in (pages / "views").glob(f"{v.stem}-*.html"))
                   for v in views)
        (share / "f1.tif").unlink()
        wait_for(lambda: row("S/f1.tif").get("missing_since"), 30, "the deletion to be noticed")
        wait_for(lambda: any("deleted from the share" in p.read_text() for p in pages.glob("*.html")), 30,
                 "the sample page to say so")
        assert service.poll() is None
    finally:
        service.terminate()
        service.wait(timeout=60)
    gone = row("S/f1.tif")
    assert gone["status"] == "done" and gone["n_particles"] == n_before > 0
    db = store.open_store(database)
    assert db.execute("SELECT COUNT(*) FROM particles WHERE image_id = ?", [gone["id"]]).fetchone()[0] == n_before
    assert row("S/f2.tif")["missing_since"] is None
