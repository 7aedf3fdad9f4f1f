"""One queued image to exactly one outcome: done, duplicate, skipped or quarantined.

The order of the checks is what keeps DESIGN's promises: the content hash is
written before the analysis (so a file that kills the worker is quarantined with
its hash after repeated crashes), a duplicate is recognised before any work,
and the file is looked at again after the analysis, so a file that changed
under us goes back to the queue instead of being stored half old, half new.
"""

from __future__ import annotations

import errno
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sqlite_utils import Database

from . import store
from .samples import locate
from .watch import root_problem
from ..pipeline.analyse import Analysis, Settings, analyse_image, analysis_record
from ..pipeline.io import UnreadableImage, file_sha256
from ..pipeline.models import Model

log = logging.getLogger("psdwatch")
BRIGHT_FIELD_REASON = "bright-field image; psdwatch measures HAADF"
DEFER_SECONDS = 10.0  # first wait of a job put back for a changing file or a share error

# Errors of a flaky network share: worth another try later, not a quarantine.
TRANSIENT_ERRNOS = {errno.EIO, errno.ESTALE, errno.ETIMEDOUT, errno.EAGAIN, errno.EHOSTDOWN,
                    errno.ENETDOWN, errno.ENETUNREACH, errno.ECONNRESET, errno.ENOMEDIUM}


@dataclass
class Outcome:
    status: str             # done | duplicate | quarantined | skipped | unchanged | retry
    image_id: int | None
    sample: str
    seconds: float
    detail: str = ""
    analysis: Analysis | None = None
    sha256: str | None = None
    reports_behind: bool = False  # stored, but its reports could not be written yet


def _same_version(path: Path, job: store.Job) -> bool:
    """Is the file still the version that was queued (size and mtime)?"""
    try:
        stat = path.stat()
    except OSError:
        return False
    return job.size is None or (stat.st_size == job.size and
                                (job.mtime_ns is None or stat.st_mtime_ns == job.mtime_ns))


def process_job(db: Database, job: store.Job, root: Path, settings: Settings,
                model: Model | None,
                before_storing: Callable[[Analysis, str], None] | None = None,
                force: bool = False) -> Outcome:
    """Process one claimed job and record its outcome in the store.

    before_storing(analysis, sha256) runs after a successful analysis and
    before the result is committed (the service writes the thumbnail there: a
    kill after the commit must not leave a stored image without its picture,
    which cannot be drawn later without reading the share again).

    force: measure again although the same content is stored (psdwatch reprocess);
    then a failure keeps the stored result instead of quarantining the file."""
    started = time.perf_counter()
    path = locate(Path(root), job.path)
    elapsed = lambda: time.perf_counter() - started  # noqa: E731

    def quarantine(reason: str, sha256: str | None = None) -> Outcome:
        if force:  # a result already stored is never replaced by a failure
            return Outcome("kept", None, job.sample, elapsed(), reason)
        finished = store.finish_quarantined(db, job, reason, sha256, elapsed())
        return Outcome("quarantined", finished.image_id, job.sample, elapsed(), reason)

    def share_gone() -> Outcome | None:
        """A read that failed because the whole share went away says nothing
        about the file: it goes back to the queue (the service waits for the
        share). A quarantine would be final: the file comes back unchanged."""
        problem = root_problem(Path(root))
        if problem is None:
            return None
        store.release(db, job)
        return Outcome("retry", None, job.sample, elapsed(), f"the watch root {problem}")

    try:
        sha256 = file_sha256(path)
    except FileNotFoundError:
        return share_gone() or quarantine("the file vanished from the share before it could be read")
    except OSError as error:
        if error.errno in TRANSIENT_ERRNOS:
            store.release(db, job, DEFER_SECONDS)
            return Outcome("retry", None, job.sample, elapsed(), f"share error: {error.strerror}")
        return quarantine(f"cannot read the file: {error.strerror or error}")

    existing = store.image_of_path(db, job.path)
    if not force and existing and existing["sha256"] == sha256 and existing["status"] in ("done", "duplicate", "skipped"):
        store.finish_unchanged(db, job)
        return Outcome("unchanged", existing["id"], job.sample, elapsed(), "same content as stored")
    store.note_sha256(db, job, sha256)
    original = store.is_duplicate(db, job.sample, sha256, exclude_path=job.path)
    if original is not None:
        finished = store.finish_duplicate(db, job, sha256, original)
        if finished is not None:
            return Outcome("duplicate", finished.image_id, job.sample, elapsed(),
                           f"same content as image {original}")
    try:
        analysis = analyse_image(path, settings, model)
    except UnreadableImage as error:
        return share_gone() or quarantine(str(error), sha256)
    except MemoryError:
        return quarantine("too large to process in the memory of this machine", sha256)
    except Exception as error:  # noqa: BLE001 - a bug or a file nobody foresaw: this file only
        log.exception("%s: the analysis failed", job.path)
        detail = " ".join(str(error).split())[:160]
        return share_gone() or quarantine(
            f"the analysis failed ({type(error).__name__}: {detail})", sha256)
    if not _same_version(path, job):
        store.release(db, job, DEFER_SECONDS)
        return Outcome("retry", None, job.sample, elapsed(), "the file changed while it was processed")
    if before_storing is not None:
        before_storing(analysis, sha256)
    # The hash stored must be of the bytes analysed: a file replaced by one of the
    # same size and time stamp (a copy with preserved times) passes _same_version.
    try:
        unchanged = file_sha256(path) == sha256
    except OSError:
        unchanged = False
    if not unchanged:
        store.release(db, job, DEFER_SECONDS)
        return Outcome("retry", None, job.sample, elapsed(), "the file's content changed while it was processed")
    record = analysis_record(analysis, job.sample)
    if "bright_field" in analysis.flags:
        finished = store.finish_skipped(db, job, sha256, BRIGHT_FIELD_REASON, record, elapsed())
        return Outcome("skipped", finished.image_id, job.sample, elapsed(), BRIGHT_FIELD_REASON)
    finished = store.finish_done(db, job, sha256, record, elapsed())
    return Outcome(finished.status, finished.image_id, job.sample, elapsed(),
                   f"{len(analysis.particles)} particles", analysis, sha256)
