"""The service's throughput in `make bench`: a backlog drained by `psdwatch run`, frames per
minute in process against a Dask LocalCluster, and the read-ahead's gain.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import tifffile

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from psdwatch.daemon.config import load_config, settings_from_config  # noqa: E402
from psdwatch.daemon.models.live import load_live_model  # noqa: E402
from psdwatch.pipeline.synth import STYLES, SynthSpec, synth_image  # noqa: E402

from unet_bench import rss_mb  # noqa: E402 - bench/unet_bench.py


def backlog(share: Path, count: int, size: int, bases: int = 12) -> None:
    """`count` distinct frames in three samples. A dozen synthetic frames are
    rendered and each copy differs by one pixel, so every file is new content
    (no duplicate shortcut) at the cost of a dozen renders, not a thousand."""
    frames = [synth_image(SynthSpec(size=size, bits=16, style=STYLES[i % len(STYLES)], seed=9000 + i))[0]
              for i in range(min(bases, count))]
    for i in range(count):
        image = frames[i % len(frames)].copy()
        image[0, 0] = i % 65536
        image[0, 1] = i // 65536
        folder = share / f"sample {i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(folder / f"frame_{i:04d}.tif", image)


def enqueue_all(db, share: Path, files: list[Path]) -> None:
    """Queue the backlog's files as the watcher would, each under its sample folder."""
    from psdwatch.daemon import store

    for path in files:
        rel = path.relative_to(share).as_posix()
        store.enqueue(db, rel, rel.split("/")[0], path.stat().st_size, path.stat().st_mtime_ns)


def daemon_drain(count: int, size: int) -> dict:
    """A lab drops a backlog: `count` frames already on the share when the real
    `psdwatch run` process starts. Throughput, and its memory sampled as it
    drains: flat memory means the RSS after the last images is no higher than
    after the first tenth."""
    import subprocess

    from psdwatch.daemon import store

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        backlog(tmp / "share", count, size)
        config = tmp / "bench.toml"
        config.write_text('[watch]\nroot = "share"\npolling = false\nsettle_seconds = 0.5\n'
                          '[store]\ndatabase = "state/db.sqlite"\n[reports]\ndir = "state/reports"\n'
                          f'[models]\ndir = "{load_config().models.dir.as_posix()}"\n'
                          '[train]\nenabled = false\n')
        started = time.perf_counter()
        daemon = subprocess.Popen([sys.executable, "-m", "psdwatch.daemon.cli", "run", "--config", str(config)],
                                  cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        db_path, samples, finished = tmp / "state" / "db.sqlite", [], 0
        try:
            while finished < count:
                time.sleep(1.0)
                if daemon.poll() is not None:
                    raise RuntimeError(f"psdwatch run exited with {daemon.returncode} during the drain")
                if db_path.exists():
                    db = store.open_store(db_path)
                    counts = store.counts(db)
                    db.close()
                    finished = sum(counts[k] for k in ("done", "quarantined", "duplicate"))
                    samples.append((finished, rss_mb(daemon.pid)))
                    if len(samples) % 30 == 0:
                        print(f"  drained {finished}/{count}, RSS {samples[-1][1]:.0f} MB", flush=True)
            elapsed = time.perf_counter() - started
            peak = rss_mb(daemon.pid, "VmHWM")
        finally:
            daemon.terminate()
            daemon.wait(timeout=60)
    early = [rss for done, rss in samples if done <= count * 0.1 and done > 0] or [samples[0][1]]
    late = [rss for done, rss in samples if done >= count * 0.9]
    return {f"drain_{count}_images_size": size, f"drain_{count}_images_per_min": count / elapsed * 60,
            f"drain_{count}_peak_rss_mb": peak, f"drain_{count}_rss_first_tenth_mb": max(early),
            f"drain_{count}_rss_last_tenth_mb": max(late),
            f"drain_{count}_rss_growth_mb": max(late) - max(early), "drain_model": counts["model"]}


def cluster_throughput(count: int, size: int, engine: str, workers: int = 2) -> dict:
    """Frames per minute analysed and stored (with their thumbnails, as the service
    does) by worker.run_jobs: in this process, then through a Dask LocalCluster of
    `workers` worker processes of one thread each ([compute] scheduler = "local").
    The same `count` distinct frames each time; the cluster's start-up (worker
    processes, imports, the model loaded once per worker) is timed apart."""
    from psdwatch.daemon.service import compute
    from psdwatch.daemon import store
    from psdwatch.daemon.config import defaults
    from psdwatch.daemon.service.loop import write_thumbnail
    from psdwatch.daemon.service.worker import run_jobs

    config = defaults()
    config.segment.engine = engine
    settings = settings_from_config(config)
    model = load_live_model(config, engine)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        backlog(tmp / "share", count, size, bases=min(count, 6))
        files = sorted((tmp / "share").rglob("*.tif"))
        for label, scheduler in (("in_process", ""), (f"local_{workers}_workers", "local")):
            db = store.open_store(tmp / f"{label}.sqlite")
            enqueue_all(db, tmp / "share", files)
            config.compute.scheduler, config.compute.workers = scheduler, workers
            started = time.perf_counter()
            cluster = compute.start(config)
            if scheduler:
                assert cluster is not None, "the LocalCluster did not start"
                warm = [cluster.submit(files[0], settings, model) for _ in range(workers)]  # the model on each worker
                cluster.ready(warm, 600)
                while not all(f.done() for f in warm):
                    time.sleep(0.1)
                out[f"cluster_{engine}_startup_s"] = time.perf_counter() - started

            def claims():
                while (job := store.claim_next(db)) is not None:
                    yield job

            t = time.perf_counter()
            statuses = [o.status for _, o in run_jobs(db, claims(), tmp / "share", settings, lambda: model, cluster,
                                                      lambda a, sha: write_thumbnail(a, sha, tmp / label))]
            elapsed = time.perf_counter() - t
            if cluster is not None:
                cluster.close()
            assert statuses.count("done") == count, statuses
            out[f"cluster_{engine}_{label}_frames_per_min"] = count / elapsed * 60
            db.close()
            print(f"  {engine} {label}: {count} frames of {size}² in {elapsed:.1f} s", flush=True)
    out[f"cluster_{engine}_speedup"] = (out[f"cluster_{engine}_local_{workers}_workers_frames_per_min"]
                                        / out[f"cluster_{engine}_in_process_frames_per_min"])
    out[f"cluster_{engine}_frames"] = f"{count} x {size}²"
    return out


def read_ahead_throughput(count: int, size: int) -> dict:
    """Frames per minute through the service's own loop (service.drain_once: claim,
    hash, analyse with the live model, store, thumbnails and report pages), with
    the next image read and its bar found in a thread beside the network
    ([compute] read_ahead = true) and without; the same frames, one run each."""
    from psdwatch.daemon import store
    from psdwatch.daemon.config import defaults
    from psdwatch.daemon.service.read_ahead import ReadAhead
    from psdwatch.daemon.service.loop import LiveModel, drain_once

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        backlog(tmp / "share", count, size, bases=min(count, 6))
        files = sorted((tmp / "share").rglob("*.tif"))
        for label, ahead in (("in_line", False), ("read_ahead", True)):
            config = defaults()
            config.watch.root, config.reports.dir = tmp / "share", tmp / label / "reports"
            config.annotations.proposals_dir = tmp / label / "proposals"
            config.reports.dir.mkdir(parents=True)
            settings = settings_from_config(config)
            live = LiveModel(config, settings.engine)
            db = store.open_store(tmp / f"{label}.sqlite")
            enqueue_all(db, tmp / "share", files)
            reader = ReadAhead(settings) if ahead else None
            t, statuses = time.perf_counter(), []
            while (outcome := drain_once(db, config, settings, live, reader)) is not None:
                statuses.append(outcome.status)
            elapsed = time.perf_counter() - t
            if reader is not None:
                reader.close()
            assert statuses.count("done") == count, statuses
            out[f"read_ahead_{label}_frames_per_min"] = count / elapsed * 60
            out["read_ahead_model"] = live.refresh().name if live.refresh() else "classical"
            db.close()
            print(f"  {label}: {count} frames of {size}² in {elapsed:.1f} s", flush=True)
    out["read_ahead_speedup"] = out["read_ahead_read_ahead_frames_per_min"] / out["read_ahead_in_line_frames_per_min"]
    out["read_ahead_frames"] = f"{count} x {size}²"
    return out
