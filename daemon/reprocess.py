"""Re-measure stored images with one model, so a sample's PSD comes from one instrument.

When a retrained model goes live, a sample's older images stay measured with the
old one (the report and `status` say so: mixed models). `psdwatch reprocess`
measures them again from the share, each image's new result replacing the old
in one transaction, the old row kept in `images_history`.

It is a separate process beside the running service: it writes in short WAL
transactions and never touches the queue, so the service goes on. It resumes by
construction: an image already measured with the target model's weights (its
sha256) is skipped, so a run that was interrupted goes on where it stopped.
Analysis runs in this process ([compute] scheduler = ""); a Dask cluster is not
supported in this version.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from . import store
from .worker import process_job
from ..pipeline.models import Model
from ..pipeline.settings import Settings

log = logging.getLogger("psdwatch")


@dataclass
class Target:
    """One stored image to measure again."""
    image_id: int
    path: str
    sample: str


def targets(db, samples: list[str] | None, model: Model | None) -> list[Target]:
    """'done' and 'skipped' images of the samples (all when None) that were not
    measured with this model's weights yet (the classical engine: engine != classical)."""
    where, params = ["status IN ('done', 'skipped')"], []
    if samples:
        where.append(f"sample IN ({', '.join('?' for _ in samples)})")
        params += samples
    if model is not None:
        where.append("(model_sha256 IS NULL OR model_sha256 != ?)")
        params.append(model.sha256)
    else:
        where.append("IFNULL(engine, '') != 'classical'")
    rows = db.execute(f"SELECT id, path, sample FROM images WHERE {' AND '.join(where)} ORDER BY sample, path",
                      params).fetchall()
    return [Target(*row) for row in rows]


def remeasure(db, root: Path, settings: Settings, model: Model | None, todo: list[Target],
              after_each: Callable[[Target, str], None] = lambda target, status: None) -> Iterator[tuple[Target, str]]:
    """Measure each target again; yields (target, outcome status). A file gone from the
    share or unreadable now keeps its stored result (its row is not touched)."""
    for target in todo:
        row = store.image_of_path(db, target.path)
        if row is None:
            continue
        job = store.Job(id=-1, path=target.path, sample=target.sample, size=row["size"],
                        mtime_ns=row["mtime_ns"], attempts=0)
        if not (Path(root) / target.path).is_file():
            status = "missing: result kept"
        else:
            outcome = process_job(db, job, root, settings, model, force=True)
            status = {"kept": f"result kept ({outcome.detail})",
                      "retry": f"result kept ({outcome.detail})"}.get(outcome.status, outcome.status)
        after_each(target, status)
        yield target, status
