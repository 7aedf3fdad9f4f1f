"""`psdwatch run`: the watcher thread feeding the durable queue, and the worker
loop draining it into the store and the reports.

The queue lives in the store, so the two halves share nothing but the SQLite
file: a crash of either loses nothing, and on restart the worker first hands
interrupted jobs back (or quarantines the file that keeps killing it).
"""

from __future__ import annotations

import logging
import signal
import sqlite3
import threading
import time
from pathlib import Path

from . import compute
from ..models import proposals, schedule
from ..report import index as report, scheduler as report_scheduler
from ..store import core as store
from ..config import load_config, settings_from_config
from ..models.live import engine_reason, live_model_name, load_live_model
from .log_setup import setup_logging  # noqa: F401 - the CLI and the demo call service.setup_logging
from ..logging_once import OncePerMinute
from ..store.report_health import health as report_health, note_failure
from .read_ahead import ReadAhead, wanted as read_ahead_wanted
from ..watch.samples import locate
from .lock import ServiceLock
from ..watch.watcher import StoreIntake, WatchSettings, Watcher, root_problem
from .worker import Outcome, process_job, run_jobs
from ...pipeline.analyse import Settings
from ...pipeline.io.files import write_atomic
from ...pipeline.io.image import preload_readers

log = logging.getLogger("psdwatch")

MAX_ATTEMPTS = 3
RETRY_SECONDS = 1.0  # before taking the next job after one was handed back


class LiveModel:
    """The live model, reloaded when the LIVE pointer changes, so a retrained
    model is picked up without restarting the service."""

    def __init__(self, config: dict, engine: str):
        self.config, self.engine = config, engine
        self._load()

    def _load(self) -> None:
        # Raises ConfigError for engine "unet" without a live model: at start,
        # not on the first image. The name is read after loading, because
        # loading may install the starter and so change what LIVE says.
        self.model = load_live_model(self.config, self.engine)
        self.name = live_model_name(self.config["models"]["dir"])
        reason = engine_reason(self.config, self.engine, self.model)
        (log.info if self.model or self.engine == "classical" else log.warning)("engine: %s", reason)

    def refresh(self):
        if live_model_name(self.config["models"]["dir"]) != self.name:
            self._load()
        return self.model


def _watch_thread(config: dict, stop: threading.Event, watcher_ready: threading.Event) -> None:
    """The watcher owns its own store connection (SQLite connections stay in their thread)."""
    db = store.open_store(config["store"]["database"], config["store"]["busy_timeout"])
    intake = StoreIntake(db, config["watch"]["root"], config["watch"]["sample_pattern"])
    watcher = Watcher(WatchSettings.from_config(config), intake.on_settled, intake.known)
    watcher.ready = watcher_ready
    watcher.run(stop)


def write_thumbnail(analysis, sha256: str, reports_dir: Path, db=None) -> None:
    """Before the result is stored (process_job's before_storing), so that a
    kill right after the commit cannot leave a stored image without its
    picture, which could only be drawn again by reading the share. Named by
    content: a thumbnail of a result that is then not stored harms nothing.
    Measuring never waits on the reports folder: with `db`, a picture that
    cannot be written (folder read-only or full) is kept in the store and the
    report thread writes it later; without, the OSError goes to the caller."""
    pictures = ((report.thumbnail_name(sha256), 512), (report.view_name(sha256), 2048))
    for name, max_px in pictures:
        try:
            data = report.encode_thumbnail(analysis, Path(name), max_px=max_px)
        except ValueError as error:  # the picture cannot be encoded: the result still counts
            log.warning("%s: no thumbnail (%s)", analysis.image, error)
            return
        try:
            write_atomic(Path(reports_dir) / name, data)
        except OSError as error:
            if db is None:
                raise
            report_scheduler.keep_picture(db, name, data)
            note_failure(db, "pictures", error)


def publish(db, reports_dir: Path, settings: Settings, page_images: int = 500) -> int:
    """Draw the pages that are due (the report thread does this in the service)."""
    return report_scheduler.rebuild_due(db, reports_dir, min_particles=settings.min_particles,
                                        bootstrap=settings.bootstrap, page_images=page_images)


def propose(outcome: Outcome, annotations: dict) -> None:
    """The image and its predicted mask for people to correct, when [annotations]
    propose is on. A proposal is a convenience: failing to write one is logged,
    never a reason to lose or redo the image's result."""
    if not annotations["propose"] or outcome.status != "done" or outcome.analysis is None:
        return
    try:
        written = proposals.write_proposal(annotations["proposals_dir"], outcome.sample, outcome.analysis.image,
                                           outcome.sha256 or "", outcome.analysis.data, outcome.analysis.mask,
                                           annotations["max_proposals"])
        if written:
            log.info("proposal written: %s", written)
    except OSError as error:
        log.warning("could not write the annotation proposal for %s: %s", outcome.analysis.image, error)


def conclude(db, config: dict, settings: Settings, job: store.Job, outcome: Outcome) -> Outcome:
    """After a job's outcome is stored (its sample's pages are now marked due, for
    the report thread): an annotation proposal, one line in the log."""
    if outcome.status in ("done", "duplicate", "quarantined", "skipped"):
        propose(outcome, config["annotations"])
    log.info("%s: %s in %.1f s (%s)", job.path, outcome.status, outcome.seconds, outcome.detail)
    return outcome


def thumbnail_writer(config: dict, db=None):
    """The worker's before_storing (service, reprocess): the image's thumbnail and
    view, drawn before its row is committed (kept in `db` when they cannot be written)."""
    reports_dir = config["reports"]["dir"]
    return lambda analysis, sha256: write_thumbnail(analysis, sha256, reports_dir, db)


def drain_once(db, config: dict, settings: Settings, live: LiveModel,
               read_ahead: ReadAhead | None = None) -> Outcome | None:
    """Claim and process one job; None when the queue is empty, or when the
    share cannot be reached (the watcher logs that): the queue waits for it.
    With read_ahead, the next queued image is read while this one is measured."""
    root = config["watch"]["root"]
    if root_problem(root) is not None:
        return None
    job = store.claim_next(db)
    if job is None:
        return None
    if read_ahead is not None and (upcoming := store.peek_next(db)) is not None:
        read_ahead.start(locate(Path(root), upcoming.path))
    outcome = process_job(db, job, root, settings, live.refresh(), thumbnail_writer(config, db), read_ahead=read_ahead)
    return conclude(db, config, settings, job, outcome)


def drain_cluster(db, config: dict, settings: Settings, live: LiveModel, cluster: compute.Cluster,
                  stop: threading.Event) -> Outcome | None:
    """Drain the queue through the Dask cluster, several images in flight, until
    it is empty (or the share is gone, or `stop`). Returns the last outcome, with
    reports_behind set if any image's reports lag; None when nothing was queued."""
    root = config["watch"]["root"]

    def claims():
        while not stop.is_set() and root_problem(root) is None:
            job = store.claim_next(db)
            if job is None:
                return
            yield job

    last = None
    for job, outcome in run_jobs(db, claims(), root, settings, live.refresh, cluster, thumbnail_writer(config, db)):
        last = conclude(db, config, settings, job, outcome)
    return last


def run_service(config_path: str | Path | None = None, stop: threading.Event | None = None,
                idle_sleep: float = 0.5, ready: threading.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or `stop` is set by a caller such as the demo).
    `ready` is set (and "psdwatch ready" logged) once the model is prepared and
    the watcher has queued what was already on the share: a caller that drops
    files waits for it. Raises StoreInUse when another service holds the store."""
    config = load_config(config_path)
    config["store"]["database"].parent.mkdir(parents=True, exist_ok=True)
    try:
        config["reports"]["dir"].mkdir(parents=True, exist_ok=True)
    except OSError as error:  # measuring never waits on the reports: the report thread retries and says so
        log.error("cannot create the reports folder %s (%s); measuring goes on", config["reports"]["dir"], error)
    with ServiceLock(config["store"]["database"]):
        return _serve(config, stop or threading.Event(), idle_sleep, ready or threading.Event())


def _serve(config: dict, stop: threading.Event, idle_sleep: float, ready: threading.Event) -> int:
    """The service, once it holds the store: prepare, watch, drain until stopped."""
    settings = settings_from_config(config)
    db = store.open_store(config["store"]["database"], config["store"]["busy_timeout"])
    recovered = store.recover_after_crash(db, MAX_ATTEMPTS)
    if any(recovered.values()):
        log.warning("after a crash: %d job(s) requeued, %d quarantined", recovered["requeued"],
                    recovered["quarantined"])
    live = LiveModel(config, settings.engine)  # a first start exports and times the model: minutes
    preload_readers()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    scanned = threading.Event()
    watcher = threading.Thread(target=_watch_thread, args=(config, stop, scanned), name="watch", daemon=True)
    watcher.start()
    scheduler = schedule.start_scheduler(config, stop)
    log.info("psdwatch running: watch %s, store %s, reports %s (config %s)", config["watch"]["root"],
             config["store"]["database"], config["reports"]["dir"], config["_path"])
    reports = report_scheduler.ReportScheduler(config, settings.min_particles, settings.bootstrap, stop).start()
    cluster = compute.start(config)
    read_ahead = (ReadAhead(settings) if not config["compute"]["scheduler"]
                  and read_ahead_wanted(config["compute"]["read_ahead"], config["segment"]["device"]) else None)
    once = OncePerMinute(log)
    while not stop.is_set():
        if not ready.is_set() and scanned.is_set():
            log.info("psdwatch ready: model %s prepared, share scanned",
                     live.model.name if live.model else "none (classical engine)")
            ready.set()
        try:
            if cluster is not None and cluster.lost:
                cluster.close()
                cluster = None
            outcome = (drain_once(db, config, settings, live, read_ahead) if cluster is None
                       else drain_cluster(db, config, settings, live, cluster, stop))
            if outcome is None:
                stop.wait(idle_sleep)
            elif outcome.status == "retry":
                stop.wait(RETRY_SECONDS)
        except (sqlite3.OperationalError, OSError) as error:  # a full disk; a store locked by another program
            once.error(f"cannot write the store or the reports ({error}): waiting, retrying every 5 s; "
                       "nothing is lost")
            # The claimed job must go back before another is taken: left 'processing',
            # it would wait for the next restart.
            while not _requeue_claimed(db, once) and not stop.wait(5):
                pass
            stop.wait(5)
        except Exception:  # noqa: BLE001 - a bug: count it as a crash of this job, keep serving
            log.exception("unexpected error while processing: the job is counted as a crash")
            _recover(db)
            stop.wait(RETRY_SECONDS)
    if scheduler is not None:
        scheduler.shutdown(wait=False)
    if cluster is not None:
        cluster.close()
    if read_ahead is not None:
        read_ahead.close()
    watcher.join(timeout=15)
    reports.join(timeout=30)
    log.info("psdwatch stopped")
    return 0


def _recover(db) -> None:
    """What a restart would do after this job crashed the worker: requeue it with
    the attempt counted, or quarantine it after MAX_ATTEMPTS."""
    try:
        if db.conn.in_transaction:
            db.conn.execute("ROLLBACK")
        store.recover_after_crash(db, MAX_ATTEMPTS)
    except sqlite3.Error as error:
        log.error("cannot requeue yet (%s)", error)


def _requeue_claimed(db, once: OncePerMinute) -> bool:
    """Hand back a job whose result could not be written, without counting it as
    a crash. False when the store cannot be written yet either."""
    try:
        with store.write_transaction(db):
            db.execute("UPDATE queue SET state = 'queued', attempts = MAX(attempts - 1, 0), "
                       "claimed_at = NULL WHERE state = 'processing'")
    except sqlite3.OperationalError as error:
        once.error(f"cannot hand the job back to the queue yet ({error}); waiting")
        return False
    return True


def wait_until_idle(db, timeout: float, reports: bool = True) -> bool:
    """For the demo and tests: True once nothing is queued or processing (and,
    with `reports`, every page drawn and every picture written)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = store.counts(db)
        due = report_health(db) if reports else {"reports_due": 0, "pictures_waiting": 0}
        if counts["queued"] == 0 and counts["processing"] == 0 and not due["reports_due"] \
                and not due["pictures_waiting"]:
            return True
        time.sleep(0.2)
    return False
