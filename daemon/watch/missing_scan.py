"""Which measured files were deleted from the share: by folder listings, in slices.

Asking the share about every stored file, one stat each, costs 0.5-2 ms per file
on SMB: at 2 M images, 17-67 minutes per pass, which the worker used to spend
with new images waiting. Here the stored paths are walked in path order (the
unique index on `images.path`), a slice at a time (a time budget per call), so
that each folder is listed once per pass and only one folder's names are held
at a time; the pass runs in the report thread, never in the worker's. A file gone keeps
its row and particles (marked `missing_since`); a file that came back is
unmarked. Nothing runs while the share itself is unreachable: a dropped mount is
not a deletion of every file.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from .. import store
from .samples import as_text, locate
from .watcher import root_problem

log = logging.getLogger("psdwatch")


class MissingScan:
    """One pass over the stored images every `every_s` seconds, `budget_s` at a time."""

    def __init__(self, root: Path, every_s: float, rows_per_query: int = 2000):
        self.root, self.every_s, self.rows = Path(root), every_s, rows_per_query
        self.cursor: str | None = None   # the last path looked at in this pass; None between passes
        self.next_pass = 0.0             # time.monotonic() when the next pass may start
        self._listing: tuple[str, set[str] | None] | None = None  # the folder being walked, its names

    def _names(self, folder: str) -> set[str] | None:
        """The names in this folder (listed once per pass); None when it cannot be read."""
        if self._listing is None or self._listing[0] != folder:
            try:
                names = {as_text(n) for n in os.listdir(locate(self.root, folder) if folder else self.root)}
            except FileNotFoundError:
                names = set()
            except OSError:
                names = None  # cannot tell: leave these rows as they are
            self._listing = (folder, names)
        return self._listing[1]

    def step(self, db, budget_s: float = 0.5) -> set[str]:
        """Look at stored images for at most budget_s; returns the samples whose
        rows changed."""
        if self.cursor is None and time.monotonic() < self.next_pass:
            return set()
        if root_problem(self.root) is not None:
            return set()
        deadline, changed = time.monotonic() + budget_s, set()
        while time.monotonic() < deadline:
            rows = store.paths_after(db, self.cursor or "", self.rows)
            if not rows:
                self.cursor, self._listing, self.next_pass = None, None, time.monotonic() + self.every_s
                break
            gone, back = [], []
            for image_id, path, sample, since in rows:
                folder, _, name = path.rpartition("/")
                names = self._names(folder)
                if names is not None and (name in names) == (since is not None):
                    (back if name in names else gone).append(image_id)
                    changed.add(sample)
            if (gone or back) and root_problem(self.root) is None:
                store.mark_missing(db, gone, back)
            self.cursor = rows[-1][1]
        if changed:
            log.warning("files measured earlier are gone from (or back on) the share in sample(s) %s; "
                        "their results stay in the store", ", ".join(sorted(changed)))
        return changed
