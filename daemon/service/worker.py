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
from typing import Callable, Iterable, Iterator

from sqlite_utils import Database

from . import compute
from .. import store
from ..watch.samples import locate
from ..watch.watcher import root_problem
from .read_ahead import ReadAhead
from ...pipeline.analyse import Analysis, ReadImage, Settings, analyse_image, analysis_record
from ...pipeline.io.image import UnreadableImage, file_sha256
from ...pipeline.runtime.models import Model

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


@dataclass
class Prepared:
    """A claimed job whose file is hashed and needs analysing: what finish_job needs
    once the analysis comes back, from this process or from a Dask worker."""
    job: store.Job
    path: Path
    root: Path
    sha256: str
    started: float
    force: bool = False

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def _quarantine(db: Database, job: store.Job, reason: str, sha256: str | None, seconds: float,
                force: bool) -> Outcome:
    if force:  # a result already stored is never replaced by a failure
        return Outcome("kept", None, job.sample, seconds, reason)
    finished = store.finish_quarantined(db, job, reason, sha256, seconds)
    return Outcome("quarantined", finished.image_id, job.sample, seconds, reason)


def _share_gone(db: Database, job: store.Job, root: Path, seconds: float) -> Outcome | None:
    """A read that failed because the whole share went away says nothing
    about the file: it goes back to the queue (the service waits for the
    share). A quarantine would be final: the file comes back unchanged."""
    problem = root_problem(Path(root))
    if problem is None:
        return None
    store.release(db, job)
    return Outcome("retry", None, job.sample, seconds, f"the watch root {problem}")


def prepare_job(db: Database, job: store.Job, root: Path, force: bool = False) -> Outcome | Prepared:
    """Everything before the analysis: hash the file (recorded before any work),
    recognise an unchanged file or a duplicate. Returns the final Outcome when no
    analysis is needed, else a Prepared for finish_job."""
    started = time.perf_counter()
    path = locate(Path(root), job.path)
    elapsed = lambda: time.perf_counter() - started  # noqa: E731
    try:
        sha256 = file_sha256(path)
    except FileNotFoundError:
        return (_share_gone(db, job, root, elapsed()) or
                _quarantine(db, job, "the file vanished from the share before it could be read", None,
                            elapsed(), force))
    except OSError as error:
        if error.errno in TRANSIENT_ERRNOS:
            store.release(db, job, DEFER_SECONDS)
            return Outcome("retry", None, job.sample, elapsed(), f"share error: {error.strerror}")
        return _quarantine(db, job, f"cannot read the file: {error.strerror or error}", None, elapsed(), force)

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
    return Prepared(job, path, Path(root), sha256, started, force)


def analyse_here(path: Path, settings: Settings, model: Model | None,
                 read: ReadImage | None = None) -> Analysis | Exception:
    """The analysis in this process (`read`: the image read ahead); a failure is
    returned, for finish_job to judge."""
    try:
        return analyse_image(path, settings, model, read)
    except Exception as error:  # noqa: BLE001 - MemoryError included: finish_job says what it means
        return error


def finish_job(db: Database, prep: Prepared, result: Analysis | BaseException,
               before_storing: Callable[[Analysis, str], None] | None = None) -> Outcome:
    """Everything after the analysis: a failure quarantines the file (or keeps the
    stored result when forced); a success is stored once the file is seen to be
    the version that was hashed and analysed."""
    db_job, path, sha256 = prep.job, prep.path, prep.sha256
    if isinstance(result, BaseException):
        error = result
        if isinstance(error, UnreadableImage):
            reason = str(error)
        elif isinstance(error, MemoryError):
            reason = "too large to process in the memory of this machine"
        else:  # a bug, a file nobody foresaw, or one that killed the cluster's workers: this file only
            if not getattr(error, "expected", False):
                log.error("%s: the analysis failed", db_job.path, exc_info=error)
            detail = " ".join(str(error).split())[:160]
            reason = f"the analysis failed ({type(error).__name__}: {detail})"
        if isinstance(error, MemoryError):
            return _quarantine(db, db_job, reason, sha256, prep.elapsed(), prep.force)
        return (_share_gone(db, db_job, prep.root, prep.elapsed()) or
                _quarantine(db, db_job, reason, sha256, prep.elapsed(), prep.force))
    analysis = result
    if not _same_version(path, db_job):
        store.release(db, db_job, DEFER_SECONDS)
        return Outcome("retry", None, db_job.sample, prep.elapsed(), "the file changed while it was processed")
    if before_storing is not None:
        before_storing(analysis, sha256)
    # The hash stored must be of the bytes analysed: a file replaced by one of the
    # same size and time stamp (a copy with preserved times) passes _same_version.
    try:
        unchanged = file_sha256(path) == sha256
    except OSError:
        unchanged = False
    if not unchanged:
        store.release(db, db_job, DEFER_SECONDS)
        return Outcome("retry", None, db_job.sample, prep.elapsed(),
                       "the file's content changed while it was processed")
    record = analysis_record(analysis, db_job.sample)
    if "bright_field" in analysis.flags:
        finished = store.finish_skipped(db, db_job, sha256, BRIGHT_FIELD_REASON, record, prep.elapsed())
        return Outcome("skipped", finished.image_id, db_job.sample, prep.elapsed(), BRIGHT_FIELD_REASON)
    finished = store.finish_done(db, db_job, sha256, record, prep.elapsed())
    return Outcome(finished.status, finished.image_id, db_job.sample, prep.elapsed(),
                   f"{len(analysis.particles)} particles", analysis, sha256)


def process_job(db: Database, job: store.Job, root: Path, settings: Settings,
                model: Model | None,
                before_storing: Callable[[Analysis, str], None] | None = None,
                force: bool = False, read_ahead: ReadAhead | None = None) -> Outcome:
    """Process one claimed job in this process and record its outcome in the store.

    before_storing(analysis, sha256) runs after a successful analysis and
    before the result is committed (the service writes the thumbnail there: a
    kill after the commit must not leave a stored image without its picture,
    which cannot be drawn later without reading the share again).

    force: measure again although the same content is stored (psdwatch reprocess);
    then a failure keeps the stored result instead of quarantining the file.

    read_ahead: where the service reads images ahead; used only if it holds
    exactly the bytes hashed here."""
    prep = prepare_job(db, job, root, force)
    if isinstance(prep, Outcome):
        return prep
    read = read_ahead.take(prep.path, prep.sha256) if read_ahead is not None else None
    return finish_job(db, prep, analyse_here(prep.path, settings, model, read), before_storing)


def run_jobs(db: Database, jobs: Iterable[store.Job], root: Path, settings: Settings,
             model_now: Callable[[], Model | None], cluster: "compute.Cluster | None" = None,
             before_storing: Callable[[Analysis, str], None] | None = None,
             force: bool = False) -> Iterator[tuple[store.Job, Outcome]]:
    """Each job with its outcome, in the order the analyses finish.

    Without a cluster, one after the other in this process (process_job). With
    one, up to cluster.capacity analyses are in flight on the Dask workers while
    this process hashes, checks and stores (prepare_job, finish_job): the store
    has one writer, whatever the cluster does. A lost scheduler hands the images
    in flight, and the rest, to this process; an image that a worker cannot read
    is analysed here. Jobs are taken from `jobs` only as capacity frees up, so a
    caller's iterator of claims claims no more than is being worked on; closing
    this generator early releases the futures (their jobs stay claimed: the
    caller hands them back)."""
    if cluster is None:
        for job in jobs:
            yield job, process_job(db, job, root, settings, model_now(), before_storing, force)
        return
    def here(prep: Prepared, result: Analysis | BaseException | None = None) -> tuple[store.Job, Outcome]:
        """Finish a job in this process: with the cluster's result, or analysed here."""
        if result is None:
            result = analyse_here(prep.path, settings, model_now())
        return prep.job, finish_job(db, prep, result, before_storing)

    jobs, pending, more = iter(jobs), {}, True
    try:
        while more or pending:
            while more and not cluster.lost and len(pending) < cluster.capacity:
                job = next(jobs, None)
                if job is None:
                    more = False
                    break
                prep = prepare_job(db, job, root, force)
                if isinstance(prep, Outcome):
                    yield job, prep
                    continue
                try:
                    pending[cluster.submit(prep.path, settings, model_now())] = prep
                except (compute.SchedulerLost, OSError):  # OSError: the bytes to send could not be read
                    yield here(prep)
            if cluster.lost:  # everything in flight, then the rest, here
                for prep in pending.values():
                    yield here(prep)
                pending.clear()
                yield from run_jobs(db, jobs, root, settings, model_now, None, before_storing, force)
                return
            for future in cluster.ready(list(pending), timeout=1.0):
                prep = pending.pop(future)
                try:
                    result = cluster.result(future)
                except compute.SchedulerLost:
                    pending[future] = prep  # with the others, analysed here
                    break
                except compute.NotHere as error:
                    log.warning("%s: %s; analysed in the service instead", prep.job.path, error)
                    result = None
                yield here(prep, result)
    finally:
        cluster.release(pending)
