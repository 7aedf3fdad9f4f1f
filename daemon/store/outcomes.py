"""How a claimed job ends: its image's row (and particles) and the end of its
queue entry, in one transaction, so that after a crash there is all of it or none.
"""

from __future__ import annotations

import json

from sqlite_utils import Database

from .images import as_duplicate, is_duplicate, note_unchanged, put_image
from .queue import close_job, drop_job, processing_jobs, requeue
from .schema import Finished, Job, write_transaction
from ...pipeline import __version__ as SOFTWARE_VERSION


def finish_done(db: Database, job: Job, sha256: str, record: dict,
                seconds: float | None = None) -> Finished:
    """Store one processed image: its row with provenance, all its particles and
    the end of its queue entry, in one transaction. `record` is
    pipeline.analyse.analysis_record(). Ends as 'duplicate' instead if the same
    content was finished in this sample meanwhile."""
    if seconds is None:
        seconds = sum(record.get("timings_s", {}).values()) or None
    particles = record.get("particles") or []
    fields = {
        "status": "done", "sha256": sha256, "nm_per_px": record.get("nm_per_px"),
        "scale_source": record.get("scale_source"), "scale_text": record.get("scale_text"),
        "model": record.get("model"), "model_sha256": record.get("model_sha256"),
        "engine": record.get("engine"), "software_version": SOFTWARE_VERSION,
        "seconds": seconds, "n_particles": len(particles),
        "flags": json.dumps(record.get("flags") or []), "psd": json.dumps(record.get("psd")),
        "scale_details": json.dumps(record.get("scale") or {}),
    }
    with write_transaction(db):
        finished = put_image(db, job, fields, particles)
        close_job(db, job)
    return finished


def finish_quarantined(db: Database, job: Job, reason: str, sha256: str | None = None,
                       seconds: float | None = None) -> Finished:
    """A file that will not be processed, with the one-line reason a person reads."""
    with write_transaction(db):
        finished = put_image(db, job, {"status": "quarantined", "reason": reason,
                                        "sha256": sha256 or job.sha256, "seconds": seconds,
                                        "software_version": SOFTWARE_VERSION})
        close_job(db, job)
    return finished


def finish_skipped(db: Database, job: Job, sha256: str, reason: str, record: dict,
                   seconds: float | None = None) -> Finished:
    """A readable image that psdwatch does not measure (a bright-field frame): a row
    with the reason and the flags that decided it, no particles."""
    with write_transaction(db):
        finished = put_image(db, job, {
            "status": "skipped", "reason": reason, "sha256": sha256, "seconds": seconds,
            "nm_per_px": record.get("nm_per_px"), "scale_source": record.get("scale_source"),
            "scale_text": record.get("scale_text"), "n_particles": 0,
            "flags": json.dumps(record.get("flags") or []), "software_version": SOFTWARE_VERSION})
        close_job(db, job)
    return finished


def finish_duplicate(db: Database, job: Job, sha256: str, of_image_id: int) -> Finished | None:
    """A file whose content is already 'done' in its sample: a row, no particles.

    of_image_id is what the worker saw; the row points at whichever image holds
    the content when the transaction runs. If none does any more (replaced
    meanwhile), the job goes back to the queue and None is returned: this
    content now needs processing."""
    with write_transaction(db):
        target = is_duplicate(db, job.sample, sha256, exclude_path=job.path)
        if target is None:
            requeue(db, job)
            return None
        finished = put_image(db, job, as_duplicate({"sha256": sha256}, target))
        close_job(db, job)
    return finished


def finish_unchanged(db: Database, job: Job) -> None:
    """The file was touched but its content (sha256) is what its row already
    holds: record the new size/mtime so it is not hashed again, change nothing else."""
    with write_transaction(db):
        note_unchanged(db, job)
        close_job(db, job)


def recover_after_crash(db: Database, max_attempts: int = 3) -> dict:
    """Run once at start, before any worker: jobs left 'processing' were
    interrupted. They are retried, except those that have now been claimed
    max_attempts times, which are quarantined instead of crashing the service
    forever. Returns {"requeued": n, "quarantined": n}."""
    with write_transaction(db):
        result = {"requeued": 0, "quarantined": 0}
        for job in processing_jobs(db):
            if job.attempts >= max_attempts:
                put_image(db, job, {"status": "quarantined", "sha256": job.sha256,
                                    "reason": f"crashed {job.attempts} times while processing"})
                drop_job(db, job)
                result["quarantined"] += 1
            else:
                requeue(db, job)
                result["requeued"] += 1
        return result
