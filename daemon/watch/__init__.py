"""Watching the share: which files are complete images, and which sample each belongs to.

    watcher.Watcher: events and a settle loop feeding the store's durable queue
    samples.sample_of: DESIGN's rule (the first folder below the watch root)
    missing_scan.MissingScan: measured files since deleted from the share, in slices
"""

from .missing_scan import MissingScan
from .samples import locate, sample_of
from .watcher import StoreIntake, WatchSettings, Watcher, root_problem

__all__ = ["MissingScan", "StoreIntake", "WatchSettings", "Watcher", "locate", "root_problem", "sample_of"]
