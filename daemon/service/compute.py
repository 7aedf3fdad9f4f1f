"""Where images are analysed: `[compute] scheduler`, with Dask (dask.distributed).

- "" : in the service's own process, one image at a time (no Dask at all).
- "local" : a LocalCluster of `[compute] workers` worker processes on this PC,
  one thread each.
- "tcp://host:port" : an existing Dask cluster, through its scheduler.

Only the analysis travels: a worker gets the image (its bytes, or its path when
it can read the share: `[compute] send`), the settings and which model, and
returns the pipeline's Analysis. Hashing, the checks around the analysis and
every write to the store stay in the calling process (worker.prepare_job and
worker.finish_job), so the store keeps one writer and its rules.

Failures, and what they become:
- a worker process dies mid-image: the scheduler runs the task again on another
  worker (Dask's own retry); after `distributed.scheduler.allowed-failures`
  deaths (3) the image is judged to be what kills workers and is quarantined,
  as a file that crashes the service three times is;
- the scheduler is unreachable at start or lost later: one line in the log, and
  the images in flight and all later ones are analysed in this process;
- a worker cannot read the file or the model (paths differ on that machine):
  that image is analysed here, and the log says which setting to change.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ...pipeline.analyse import Analysis, analyse_image, analyse_loaded
from ...pipeline.io.image import load_image
from ...pipeline.runtime.models import Model
from ...pipeline.settings import RuntimeOptions, Settings
from ..config import Config, runtime_options

log = logging.getLogger("psdwatch")


class SchedulerLost(RuntimeError):
    """The Dask scheduler cannot be reached (any more)."""


class WorkerLost(RuntimeError):
    """The image's task killed the workers it ran on (Dask's KilledWorker)."""
    expected = True  # a one-line reason, no traceback in the log


class NotHere(RuntimeError):
    """A worker cannot read the file or the model: analyse this image in the service."""
    expected = True


# --------------------------------------------------------------------------- worker side

@dataclass(frozen=True)
class ModelSpec:
    """Which model a worker loads (once per worker process), and how to run it."""
    models_dir: str
    name: str
    sha256: str
    options: RuntimeOptions  # [segment] device, runtime, precision, and the worker's threads

    @classmethod
    def of(cls, model: Model | None, models_dir: Path, options: RuntimeOptions) -> "ModelSpec | None":
        if model is None:
            return None
        return cls(str(models_dir), model.name, model.sha256, options)


_WORKER_MODELS: dict[ModelSpec, Model] = {}  # in each worker process: each model loaded once


def _worker_model(spec: ModelSpec | None) -> Model | None:
    if spec is None:
        return None
    model = _WORKER_MODELS.get(spec)
    if model is None:
        from ..models.live import prepare_named

        weights = Path(spec.models_dir) / f"{spec.name}.safetensors"
        if not weights.is_file():
            raise NotHere(f"the worker cannot read the model {weights}")
        model = prepare_named(Path(spec.models_dir), spec.name, spec.options)
        if model.sha256 != spec.sha256:
            raise NotHere(f"the worker's copy of model {spec.name} differs from the service's")
        _WORKER_MODELS.clear()  # a new live model replaces the old one in memory
        _WORKER_MODELS[spec] = model
    return model


def analyse_on_worker(source: str | dict[str, bytes], name: str, settings: Settings,
                      spec: ModelSpec | None) -> Analysis:
    """The task a Dask worker runs: one image's analysis, as analyse_image does it
    in the service. `source` is a path the worker reads, or the file's bytes
    (with its companions, e.g. a TIA .ser beside its .emi) keyed by file name."""
    model = _worker_model(spec)
    if isinstance(source, str):
        if not os.path.isfile(source):
            raise NotHere(f"the worker cannot read {source} (set [compute] send = \"bytes\")")
        return analyse_image(source, settings, model)
    with tempfile.TemporaryDirectory(prefix="psdwatch-") as folder:
        t = time.perf_counter()
        for file_name, content in source.items():
            Path(folder, file_name).write_bytes(content)
        loaded = load_image(Path(folder, Path(name).name))
        return analyse_loaded(loaded, settings, model, name, {"read_s": time.perf_counter() - t})


def files_to_send(path: Path) -> dict[str, bytes]:
    """The file's bytes, and a TIA .emi file's .ser data files beside it."""
    files = {path.name: path.read_bytes()}
    if path.suffix.lower() == ".emi":
        for companion in path.parent.glob(f"{path.stem}_*.ser"):
            files[companion.name] = companion.read_bytes()
    return files


# --------------------------------------------------------------------------- service side

class Cluster:
    """A Dask client and, for "local", the LocalCluster it owns."""

    def __init__(self, client, cluster, where: str, send: str, threads: int, config: Config):
        self.client, self.cluster, self.where, self.send = client, cluster, where, send
        self.threads, self.config = threads, config
        self.lost = False

    @property
    def capacity(self) -> int:
        """Images in flight at once: two per worker thread, so that none waits
        while the service stores the previous result."""
        try:
            return max(2, 2 * sum(self.client.nthreads().values()))
        except Exception:  # noqa: BLE001 - a lost scheduler: the next submit says so
            return 2

    def submit(self, path: Path, settings: Settings, model: Model | None):
        """A future of the image's Analysis. Raises SchedulerLost."""
        if self.lost:
            raise SchedulerLost(f"the Dask scheduler {self.where} was lost")
        source = str(path) if self.send == "path" else files_to_send(path)
        spec = ModelSpec.of(model, self.config.models.dir, runtime_options(self.config, self.threads))
        try:
            return self.client.submit(analyse_on_worker, source, str(path), settings, spec, pure=False,
                                      key=f"psdwatch-analyse-{path.name[:40]}-{uuid.uuid4().hex[:12]}")
        except Exception as error:  # noqa: BLE001 - a closed client, a broken comm
            raise self._lost(error) from None

    def ready(self, futures: list, timeout: float) -> list:
        """The futures that have finished (or failed), waiting up to `timeout` s for one."""
        deadline = time.monotonic() + timeout
        while True:
            done = [f for f in futures if f.done()]
            if done or time.monotonic() >= deadline:
                return done
            time.sleep(0.02)

    def result(self, future) -> Analysis | Exception:
        """The Analysis, or the error that the analysis raised (for finish_job to
        judge). Raises SchedulerLost when the cluster went away, NotHere when the
        worker could not read its inputs."""
        from asyncio import CancelledError  # a BaseException: what a lost scheduler's futures raise

        from distributed.scheduler import KilledWorker

        try:
            return future.result()
        except KilledWorker as error:
            return WorkerLost(f"the image killed the Dask workers it ran on ({error})")
        except NotHere:
            raise
        except CancelledError as error:
            raise self._lost(error) from None
        except Exception as error:  # noqa: BLE001 - judged below
            if future.status == "cancelled" or self.client.status not in ("running", "connecting"):
                raise self._lost(error) from None
            return error

    def _lost(self, error: BaseException) -> SchedulerLost:
        if not self.lost:
            self.lost = True
            log.error("compute: lost the Dask scheduler %s (%s): analysing in this process from now on",
                      self.where, " ".join(str(error).split())[:200] or type(error).__name__)
        return SchedulerLost(self.where)

    def release(self, futures) -> None:
        for future in futures:
            try:
                future.release()
            except Exception:  # noqa: BLE001 - nothing to release on a lost scheduler
                pass

    def close(self) -> None:
        for part in (self.client, self.cluster):
            if part is not None:
                try:
                    part.close()
                except Exception:  # noqa: BLE001 - closing a lost cluster
                    pass


def start(config: Config) -> Cluster | None:
    """The cluster of `[compute] scheduler`, or None for analysis in this process
    ("", or a scheduler that cannot be reached: logged)."""
    compute = config.compute
    where = compute.scheduler
    if not where:
        return None
    import dask
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # its INFO is a line per worker event

    send = compute.send if compute.send != "auto" else ("path" if where == "local" else "bytes")
    threads = config.segment.threads
    timeout = compute.connect_timeout
    try:
        with dask.config.set({"distributed.comm.timeouts.connect": f"{timeout}s"}):
            if where == "local":
                workers = compute.workers
                threads = threads or max(1, (os.cpu_count() or 1) // workers)
                cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=logging.WARNING)
                client = Client(cluster, timeout=f"{timeout}s")
            else:
                cluster = None
                client = Client(where, timeout=f"{timeout}s")
    except Exception as error:  # noqa: BLE001 - OSError, TimeoutError, whatever the comm raised
        log.error("compute: cannot start or reach the Dask scheduler %r (%s): analysing in this process",
                  where, " ".join(str(error).split())[:200] or type(error).__name__)
        return None
    n = len(client.scheduler_info().get("workers", {}))
    log.info("compute: analysing on Dask %s (%s, %d worker(s) now; images sent as %s)",
             where, client.scheduler.address, n, send)
    if n == 0:
        log.warning("compute: the Dask cluster %s has no workers yet: images wait for one", where)
    return Cluster(client, cluster, where, send, threads, config)
