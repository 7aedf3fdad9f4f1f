"""[compute] scheduler: analysis on a real Dask LocalCluster of two worker processes
(classical engine, so each image takes about a second), the store written by the
calling process only, exactly once per file through a killed worker, a lost
scheduler and an unreachable one.

No mock of Dask: the clusters are real, the worker killed is a real process
(SIGKILL, as the kernel's OOM killer does it), the lost scheduler is a real
`dask scheduler` process that is killed."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from psdwatch.daemon.service import compute
from psdwatch.daemon import store
from psdwatch.daemon.config import Config, ConfigError, defaults, load_config
from psdwatch.daemon.service.worker import run_jobs
from psdwatch.pipeline.settings import Settings

from .conftest import REPO, classical_service, count_status, drop_frame, read_rows, start_service, wait_for

CLASSICAL = Settings(engine="classical", bootstrap=0)


def _config(tmp_path: Path, scheduler: str, **compute_keys) -> Config:
    config = defaults()
    config.compute = config.compute.model_copy(update={"scheduler": scheduler, **compute_keys})
    config.models.dir = tmp_path / "no-models"
    return config


def _queue(db, root: Path, paths: list[Path]) -> None:
    for path in paths:
        rel = path.relative_to(root).as_posix()
        stat = path.stat()
        store.enqueue(db, rel, rel.split("/")[0], stat.st_size, stat.st_mtime_ns)


def _claims(db):
    while (job := store.claim_next(db)) is not None:
        yield job


def _exactly_once(db, n_files: int) -> list[dict]:
    """Every file one row, done, its particles stored once; nothing left queued."""
    rows = list(db.query("SELECT * FROM images ORDER BY path"))
    assert len(rows) == n_files and len({r["path"] for r in rows}) == n_files
    assert all(r["status"] == "done" for r in rows), [(r["path"], r["status"], r["reason"]) for r in rows]
    for r in rows:
        assert db.execute("SELECT COUNT(*), COUNT(DISTINCT number) FROM particles WHERE image_id = ?",
                          [r["id"]]).fetchone() == (r["n_particles"], r["n_particles"])
    assert store.problems(db) == []
    assert db.execute("SELECT COUNT(*) FROM queue").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM images_history").fetchone()[0] == 0
    return rows


# --------------------------------------------------------------------------- config

@pytest.mark.parametrize("value", ["", "local", "tcp://10.0.0.5:8786", "tcp://gpu-box:8786"])
def test_scheduler_values_accepted(tmp_path, value):
    config = tmp_path / "c.toml"
    config.write_text(f'[compute]\nscheduler = "{value}"\n')
    assert load_config(config).compute.scheduler == value


@pytest.mark.parametrize("text, says", [('scheduler = "dask"', "[compute] scheduler"),
                                        ('scheduler = "tcp://host"', "[compute] scheduler"),
                                        ('send = "mail"', "[compute] send"),
                                        ("workers = 0", "[compute] workers")])
def test_bad_compute_keys_are_one_line_errors(tmp_path, text, says):
    config = tmp_path / "c.toml"
    config.write_text(f"[compute]\n{text}\n")
    with pytest.raises(ConfigError) as error:
        load_config(config)
    assert says in str(error.value) and "\n" not in str(error.value)


def test_an_unreachable_scheduler_falls_back_to_this_process_and_says_so(tmp_path, store_db, caplog):
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = tmp_path / "share"
    frames = [drop_frame(root / "A", f"f{k}", k + 1, size=256) for k in range(2)]
    _queue(store_db, root, frames)
    started = time.monotonic()
    with caplog.at_level(logging.INFO, "psdwatch"):
        cluster = compute.start(_config(tmp_path, f"tcp://127.0.0.1:{port}", connect_timeout=2.0))
    assert cluster is None and time.monotonic() - started < 20
    assert f"cannot start or reach the Dask scheduler 'tcp://127.0.0.1:{port}'" in caplog.text
    assert "analysing in this process" in caplog.text
    outcomes = [o.status for _, o in run_jobs(store_db, _claims(store_db), root, CLASSICAL, lambda: None, cluster)]
    assert outcomes == ["done", "done"]
    _exactly_once(store_db, 2)


# --------------------------------------------------------------------------- a real LocalCluster

@pytest.fixture(scope="module")
def local_cluster(tmp_path_factory):
    """One LocalCluster of two worker processes for the tests below (it takes seconds to start)."""
    cluster = compute.start(_config(tmp_path_factory.mktemp("cluster"), "local", workers=2))
    assert cluster is not None
    yield cluster
    cluster.close()


@pytest.mark.slow
def test_the_workers_run_this_checkout(local_cluster):
    files = local_cluster.client.run(lambda: __import__("psdwatch.daemon.service.compute").daemon.service.compute.__file__)
    assert len(files) == 2
    assert {Path(f).resolve() for f in files.values()} == {(REPO / "daemon" / "service" / "compute.py").resolve()}


@pytest.mark.slow
@pytest.mark.parametrize("send", ["path", "bytes"])
def test_a_share_through_the_cluster_is_stored_once_with_the_in_process_result(tmp_path, store_db, local_cluster,
                                                                                send, monkeypatch):
    root = tmp_path / "share"
    frames = [drop_frame(root / ("A" if k < 3 else "B"), f"f{k}", k + 11, size=384) for k in range(5)]
    _queue(store_db, root, frames)
    monkeypatch.setattr(local_cluster, "send", send)
    pids = set(local_cluster.client.run(os.getpid).values())
    outcomes = list(run_jobs(store_db, _claims(store_db), root, CLASSICAL, lambda: None, local_cluster))
    assert sorted(job.path for job, _ in outcomes) == sorted(f.relative_to(root).as_posix() for f in frames)
    rows = _exactly_once(store_db, 5)
    assert os.getpid() not in pids
    # What the workers measured is what this process measures.
    from psdwatch.pipeline.analyse import analyse_image

    for row in rows:
        here = analyse_image(root / row["path"], CLASSICAL)
        assert row["n_particles"] == len(here.particles) and row["engine"] == "classical"


@pytest.mark.slow
def test_a_worker_killed_mid_image_the_image_is_finished_once(tmp_path, store_db, local_cluster):
    root = tmp_path / "share"
    frame = drop_frame(root / "A", "big", 7, size=2048)  # about 1.5 s of work: time to kill it
    _queue(store_db, root, [frame])
    client = local_cluster.client
    pids = client.run(os.getpid)
    killed: list = []

    def kill_the_worker_on_it():
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            busy = {w: keys for w, keys in client.processing().items() if keys}
            for address, keys in busy.items():
                if any("psdwatch-analyse-big.tif" in str(k) for k in keys):
                    time.sleep(0.3)  # mid-image
                    os.kill(pids[address], signal.SIGKILL)
                    killed.append((address, pids[address]))
                    return
            time.sleep(0.02)

    killer = threading.Thread(target=kill_the_worker_on_it)
    killer.start()
    outcomes = list(run_jobs(store_db, _claims(store_db), root, CLASSICAL, lambda: None, local_cluster))
    killer.join()
    assert killed, "no worker was seen analysing the image"
    assert [o.status for _, o in outcomes] == ["done"]
    _exactly_once(store_db, 1)
    # The nanny restarted the killed worker: two workers again, the killed pid gone.
    wait_for(lambda: len(client.run(os.getpid)) == 2, 60, "the killed worker restarted")
    assert killed[0][1] not in client.run(os.getpid).values()


# --------------------------------------------------------------------------- a lost scheduler

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_a_scheduler_lost_mid_run_hands_the_images_to_this_process(tmp_path, store_db, caplog):
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
    scheduler = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", str(port),
                                  "--no-dashboard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    worker = subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1",
                               "--nworkers", "1", "--no-dashboard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        root = tmp_path / "share"
        frames = [drop_frame(root / "A", f"f{k}", k + 21, size=1024) for k in range(6)]
        _queue(store_db, root, frames)
        with caplog.at_level(logging.INFO, "psdwatch"):
            deadline = time.monotonic() + 60
            while (cluster := compute.start(_config(tmp_path, address, connect_timeout=3.0))) is None:
                assert time.monotonic() < deadline, "the scheduler did not come up"
                time.sleep(1)
            wait_for(lambda: cluster.client.scheduler_info()["workers"], 60, "a worker on the scheduler")
            seen = []
            for job, outcome in run_jobs(store_db, _claims(store_db), root, CLASSICAL, lambda: None, cluster):
                seen.append(outcome.status)
                if len(seen) == 1:  # one image back from the cluster: now lose the scheduler
                    scheduler.kill()
                    scheduler.wait(timeout=30)
        assert cluster.lost
        assert f"lost the Dask scheduler {address}" in caplog.text
        assert caplog.text.count("lost the Dask scheduler") == 1
        assert seen == ["done"] * 6
        _exactly_once(store_db, 6)
        cluster.close()
    finally:
        for process in (worker, scheduler):
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


# --------------------------------------------------------------------------- the service and reprocess

def _with_compute(config: Path, keys: str) -> None:
    config.write_text(config.read_text() + f"[compute]\n{keys}\n")


def _drain(config: Path, database: Path, done: int, timeout: float, what: str) -> None:
    """`psdwatch run` until `done` images are 'done', then stopped (SIGTERM)."""
    service = start_service(config)
    try:
        wait_for(lambda: count_status(database) == done, timeout, what)
    finally:
        service.terminate()
        service.wait(timeout=60)


@pytest.mark.slow
def test_the_service_drains_a_share_through_a_local_cluster(tmp_path):
    root, config, database = classical_service(tmp_path)
    _with_compute(config, 'scheduler = "local"\nworkers = 2')
    frames = [drop_frame(root / sample, f"f{k}", k + 31, size=512)
              for k, sample in enumerate(("A", "A", "A", "B", "B", "C"))]
    shutil.copyfile(frames[0], root / "A" / "copy.tif")  # the same content twice: one done, one duplicate
    log = tmp_path / "service.log"
    with log.open("w") as err:
        service = start_service(config, stderr=err)
        try:
            def check(what):
                assert service.poll() is None, f"the service died: {log.read_text()[-2000:]}"
            wait_for(lambda: len(read_rows(database)) == 7 and not read_rows(database, "SELECT * FROM queue"),
                     180, "every file with its row", check=check)
            # A file arriving while the cluster works on nothing: still picked up.
            drop_frame(root / "C", "late", 99, size=512)
            wait_for(lambda: count_status(database) == 7, 120, "the late file stored", check=check)
        finally:
            service.terminate()
            service.wait(timeout=60)
    text = log.read_text()
    assert "compute: analysing on Dask local" in text, text[-3000:]
    assert "analysing in this process" not in text
    rows = read_rows(database, "SELECT * FROM images ORDER BY path")
    assert len(rows) == 8 and len({r["path"] for r in rows}) == 8
    assert sorted(r["status"] for r in rows).count("duplicate") == 1
    db = store.open_store(database)
    try:
        assert store.problems(db) == []
        for r in rows:
            if r["status"] == "done":
                assert db.execute("SELECT COUNT(*) FROM particles WHERE image_id = ?",
                                  [r["id"]]).fetchone()[0] == r["n_particles"]
    finally:
        db.close()
    assert service.returncode == 0
    assert (tmp_path / "state" / "reports" / "index.html").is_file()


@pytest.mark.slow
def test_reprocess_all_through_a_local_cluster(tmp_path, models_dir):
    """DESIGN's check: a share drained by the service, then `psdwatch reprocess --all`
    with scheduler = "local": exit 0, one row per image, history kept, no particle
    twice, the model recorded; status --json and the reports name no mixed sample."""
    root, config, database = classical_service(tmp_path)
    for k, sample in enumerate(("A", "A", "B", "B")):
        drop_frame(root / sample, f"f{k}", k + 1, size=384)
    _drain(config, database, 4, 90, "the share drained with the classical engine")
    config.write_text(config.read_text().replace('dir = "no-models"', 'dir = "models"')
                      .replace('engine = "classical"', 'engine = "auto"'))
    _with_compute(config, 'scheduler = "local"\nworkers = 2')
    live = (tmp_path / "models" / "LIVE").read_text().strip()
    status = lambda: json.loads(subprocess.run(  # noqa: E731
        [sys.executable, "-m", "psdwatch.daemon.cli", "status", "--json", "--config", str(config)],
        capture_output=True, text=True, check=True).stdout)
    assert status()["mixed_model_samples"] == 0

    done = subprocess.run([sys.executable, "-m", "psdwatch.daemon.cli", "reprocess", "--all", "--config", str(config)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "re-measuring 4 images with " + live + " on Dask local" in done.stderr
    assert "4 done" in done.stdout

    db = store.open_store(database)
    try:
        rows = list(db.query("SELECT * FROM images ORDER BY path"))
        assert [r["path"] for r in rows] == ["A/f0.tif", "A/f1.tif", "B/f2.tif", "B/f3.tif"]
        assert all(r["status"] == "done" and r["model"] == live and r["engine"] == "unet" for r in rows)
        for r in rows:
            assert db.execute("SELECT COUNT(*), COUNT(DISTINCT number) FROM particles WHERE image_id = ?",
                              [r["id"]]).fetchone() == (r["n_particles"], r["n_particles"])
        history = list(db.query("SELECT path, model, replaced_because FROM images_history ORDER BY path"))
        assert history == [{"path": r["path"], "model": "classical", "replaced_because": "reprocessed"}
                           for r in rows]
        assert store.problems(db) == []
    finally:
        db.close()
    assert status()["mixed_model_samples"] == 0 and status()["done"] == 4


@pytest.mark.slow
def test_a_service_killed_while_the_cluster_works_restarts_with_nothing_lost_or_doubled(tmp_path):
    import psutil

    root, config, database = classical_service(tmp_path)
    _with_compute(config, 'scheduler = "local"\nworkers = 2')
    frames = [drop_frame(root / ("A" if k % 2 else "B"), f"f{k}", k + 41, size=1024) for k in range(8)]
    service = start_service(config)
    try:
        wait_for(lambda: count_status(database) >= 2, 120, "the first images stored")
        workers = psutil.Process(service.pid).children(recursive=True)
        assert workers, "no worker processes under the service"
        service.kill()  # SIGKILL: no shutdown code runs
        service.wait(timeout=30)
        # The LocalCluster's workers do not outlive the service.
        gone, alive = psutil.wait_procs(workers, timeout=30)
        assert not alive, [p.cmdline() for p in alive]
    finally:
        if service.poll() is None:
            service.kill()
    assert count_status(database) < 8
    _drain(config, database, 8, 180, "the share drained after the restart")
    rows = read_rows(database, "SELECT * FROM images ORDER BY path")
    assert [r["path"] for r in rows] == sorted(f.relative_to(root).as_posix() for f in frames)
    assert not read_rows(database, "SELECT * FROM queue")
    db = store.open_store(database)
    try:
        assert store.problems(db) == []
        assert all(r["status"] == "done" for r in rows)
    finally:
        db.close()
