"""The SQLite store: every statement psdwatch runs on it lives in this package.

    core: the queue, the images, their particles; `write_transaction`; `problems`
    sample_stats: the numbers kept per sample (counts, models, the size histogram)
    queries: the reports' reads, in one snapshot each, and their per-sample cache
    report_health: whether the reports keep up
"""

from .core import open_store, open_store_readonly, problems, write_transaction

__all__ = ["open_store", "open_store_readonly", "problems", "write_transaction"]
