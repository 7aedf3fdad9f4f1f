"""A sample's particle CSV kept up to date by appending, never rebuilt per image.

Rewriting the whole CSV after every image costs the sample's size (280 MB for
10^5 images); a new image only adds its own rows at the end (rows are in image
order, and a new image has the highest id). `csv_state` remembers how far the
file goes (last image, rows, bytes): a writer killed mid-append leaves bytes
past that mark, which the next append cuts off first, so no row is written
twice. Only when an image already in the file changes (measured again, a
duplicate promoted; report_dirty.rewrite_csv says so) or the file is gone is the
CSV written again, streamed from the store in chunks (constant memory) and
swapped in atomically.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ...pipeline.io.files import write_atomic
from .names import sample_csv_name
from .particles_csv import write_csv
from ..store import report_state, sample_reads
from ..store.queries import PARTICLE_FIELDS


def _stream(db, sample: str, f: BinaryIO, after_id: int, first: int, header: bool,
            images_per_chunk: int = 200) -> tuple[int, int]:
    """Write the rows of the sample's 'done' images with id > after_id, in image and
    particle order, a few hundred images at a time. Returns (rows, last image id)."""
    rows, last = 0, after_id
    if header:
        write_csv(f, np.zeros((0, len(PARTICLE_FIELDS))), {})
    while True:
        ids = sample_reads.done_images_after(db, sample, last, images_per_chunk)
        if not ids:
            return rows, last
        parts = sample_reads.particle_rows(db, ids)  # text columns as numbers (edge)
        if parts.size:
            write_csv(f, parts, sample_reads.scale_of_images(db, ids), header=False, first=first + rows)
            rows += parts.shape[0]
        last = ids[-1]


def update_csv(db, sample: str, reports_dir: Path, rewrite: bool) -> int:
    """Bring reports_dir/<slug>.csv up to the store: append the rows of images
    stored since the last call, or (rewrite, no record, the file gone or cut)
    write it again. Returns the number of rows the file holds."""
    path = Path(reports_dir) / sample_csv_name(sample)
    state = report_state.csv_state(db, sample)
    size = path.stat().st_size if path.is_file() else -1
    if rewrite or state is None or size < state[2]:
        result = {}

        def whole(f: BinaryIO) -> None:
            result["rows"], result["last"] = _stream(db, sample, f, 0, 1, header=True)

        write_atomic(path, whole)
        rows, last = result["rows"], result["last"]
    else:
        last_id, rows, offset = state
        with open(path, "r+b") as f:
            f.truncate(offset)  # rows of an append that was cut short
            f.seek(offset)
            added, last = _stream(db, sample, f, last_id, rows + 1, header=False)
            f.flush()
            os.fsync(f.fileno())
        rows += added
        if added == 0 and (last_id, rows) == (state[0], state[1]):
            return rows
    report_state.save_csv_state(db, sample, last, rows, path.stat().st_size)
    return rows

