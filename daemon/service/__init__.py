"""`psdwatch run`: the watcher feeding the queue, the worker draining it, where analysis runs.

    loop.run_service: threads for watching, working and reports; the service lock
    worker.process_job: one queued image to exactly one outcome
    compute: in process, or on a Dask LocalCluster / an existing cluster
    read_ahead: the next image read while the network measures this one
"""

from .worker import process_job, run_jobs

__all__ = ["process_job", "run_jobs"]
