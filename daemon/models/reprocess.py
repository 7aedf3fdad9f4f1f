"""Re-measure stored images with one model, so a sample's PSD comes from one instrument.

When a retrained model goes live, a sample's older images stay measured with the
old one (the report and `status` say so: mixed models). `psdwatch reprocess`
measures them again from the share, each image's new result replacing the old
in one transaction, the old row kept in `images_history`.

It is a separate process beside the running service: it writes in short WAL
transactions and never touches the queue, so the service goes on. It resumes by
construction: an image already measured with the target model's weights (its
sha256) is skipped, so a run that was interrupted goes on where it stopped.
Analysis goes where `[compute] scheduler` says (daemon/service/compute.py): in this
process, or on a Dask LocalCluster or cluster, several images at once; the
results are stored here, by this process only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..service import compute
from .. import store
from ..service.worker import run_jobs
from ...pipeline.runtime.models import Model
from ...pipeline.settings import Settings

log = logging.getLogger("psdwatch")


@dataclass
class Target:
    """One stored image to measure again."""
    image_id: int
    path: str
    sample: str


def targets(db, samples: list[str] | None, model: Model | None, why: str = "model",
            fallback_nm_per_px: float | None = None) -> list[Target]:
    """'done' and 'skipped' images of the samples (all when None) that `why`
    says to measure again (store.images_to_remeasure): by default those not
    measured with this model's weights yet (the classical engine: engine != classical)."""
    rows = store.images_to_remeasure(db, samples, why, model.sha256 if model is not None else None,
                                     fallback_nm_per_px)
    return [Target(*row) for row in rows]


def remeasure(db, root: Path, settings: Settings, model: Model | None, todo: list[Target],
              after_each: Callable[[Target, str], None] = lambda target, status: None,
              cluster: compute.Cluster | None = None,
              before_storing: Callable | None = None) -> Iterator[tuple[Target, str]]:
    """Measure each target again (on the cluster when given); yields (target, outcome
    status) as they finish. A file gone from the share or unreadable now keeps its
    stored result (its row is not touched). before_storing: as for process_job
    (the CLI redraws the image's outlines there)."""
    by_path = {t.path: t for t in todo}
    missing: list[Target] = []

    def jobs() -> Iterator[store.Job]:
        for target in todo:
            row = store.image_of_path(db, target.path)
            if row is None:
                continue
            if not (Path(root) / target.path).is_file():
                missing.append(target)
                continue
            yield store.Job(id=-1, path=target.path, sample=target.sample, size=row["size"],
                            mtime_ns=row["mtime_ns"], attempts=0)

    def report(target: Target, status: str) -> tuple[Target, str]:
        after_each(target, status)
        return target, status

    for job, outcome in run_jobs(db, jobs(), root, settings, lambda: model, cluster, before_storing, force=True):
        while missing:
            yield report(missing.pop(0), "missing: result kept")
        status = {"kept": f"result kept ({outcome.detail})",
                  "retry": f"result kept ({outcome.detail})"}.get(outcome.status, outcome.status)
        yield report(by_path[job.path], status)
    while missing:
        yield report(missing.pop(0), "missing: result kept")
