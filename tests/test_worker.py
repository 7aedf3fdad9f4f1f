"""The worker's promise that the stored hash is the hash of the bytes analysed."""

from __future__ import annotations

import os
import shutil

from psdwatch.daemon import store
from psdwatch.daemon.service.worker import process_job
from psdwatch.pipeline.settings import Settings
from psdwatch.pipeline.synth import SynthSpec, synth_image, write_example


def test_a_file_replaced_with_preserved_size_and_times_is_not_stored_under_its_old_hash(tmp_path, store_db):
    root = tmp_path / "share"
    other = tmp_path / "other"
    for folder, seed in ((root / "S", 1), (other, 2)):
        image, mask, truth = synth_image(SynthSpec(size=256, bits=16, style="band", seed=seed))
        write_example(folder, "frame", image, mask, truth)
    path = root / "S" / "frame.tif"
    assert path.stat().st_size == (other / "frame.tif").stat().st_size  # same size, other pixels
    stat = path.stat()
    store.enqueue(store_db, "S/frame.tif", "S", stat.st_size, stat.st_mtime_ns)

    def replace_like_rsync_with_times(analysis, sha256) -> None:
        shutil.copyfile(other / "frame.tif", path)
        os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    outcome = process_job(store_db, store.claim_next(store_db), root, Settings(engine="classical", bootstrap=0),
                          None, replace_like_rsync_with_times)
    assert outcome.status == "retry" and "changed" in outcome.detail
    assert store_db.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 0
    assert store_db.execute("SELECT state FROM queue").fetchone()[0] == "queued"
    # Taken again once its wait is over, it is measured as the content it now has.
    store_db.execute("UPDATE queue SET not_before = NULL")
    outcome = process_job(store_db, store.claim_next(store_db), root, Settings(engine="classical", bootstrap=0), None)
    from psdwatch.pipeline.io.image import file_sha256
    assert outcome.status == "done" and outcome.sha256 == file_sha256(other / "frame.tif")
