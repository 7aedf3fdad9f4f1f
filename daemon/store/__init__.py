"""The SQLite store: every statement psdwatch runs on it lives in this package.

    schema: the tables, open_store, `write_transaction` (the one way to write)
    queue: the durable queue of files to measure
    images: one row per file, its particles, its history
    outcomes: how a claimed job ends (row, particles, queue entry in one transaction)
    counts: `psdwatch status`'s numbers; `problems`, the check of the store's rules
    sample_stats: the numbers kept per sample (counts, models, the size histogram)
    queries / sample_reads: the reports' reads, in one snapshot each; the index's cache
    report_state: the report thread's bookkeeping (due pages, waiting pictures, health)

The names below are the store's face: `from psdwatch.daemon import store`, then
`store.enqueue(...)`, `store.finish_done(...)`.
"""

from .counts import counts, models_by_sample, problems, sample_images, sample_particles
from .images import finished_count, image_of_path, images_to_remeasure, is_duplicate, mark_missing, paths_after
from .outcomes import (finish_done, finish_duplicate, finish_quarantined, finish_skipped, finish_unchanged,
                       recover_after_crash)
from .queue import (claim_next, enqueue, hand_back_claimed, is_known, note_sha256, peek_next, queue_busy,
                    queue_counts, release)
from .schema import (PARTICLE_COLUMNS, STATUSES, Finished, Job, abandon, now, open_store, open_store_readonly,
                     write_transaction)

__all__ = ["PARTICLE_COLUMNS", "STATUSES", "Finished", "Job", "abandon", "claim_next", "counts", "enqueue",
           "finish_done", "finish_duplicate", "finish_quarantined", "finish_skipped", "finish_unchanged",
           "finished_count", "hand_back_claimed", "image_of_path", "images_to_remeasure", "is_duplicate",
           "is_known", "mark_missing", "models_by_sample", "note_sha256", "now", "open_store",
           "open_store_readonly", "paths_after", "peek_next", "problems", "queue_busy", "queue_counts",
           "recover_after_crash", "release", "sample_images", "sample_particles", "write_transaction"]
