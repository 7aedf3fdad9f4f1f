"""`psdwatch demo`: a microscope session played end to end.

A temporary export share gets synthetic HAADF frames (with known truth) in two
sample folders, at a microscope's pace, some written slowly in chunks the way a
network copy arrives; the real service watches it, measures each frame, stores
the particles and regenerates the reports. At the end each sample's measured
d50 is set against the truth, and the path of index.html is printed.

The frames are dropped only once the service says it is ready: a first start
prepares the model (ONNX export, the int8 graph and its guard, timing the
paths; minutes on a small CPU), and frames written meanwhile would wait in the
share. The session ends when every frame it wrote has its outcome in the store,
not when the queue looks empty (it is empty, too, before the watcher saw them).
"""

from __future__ import annotations

import io
import tempfile
import threading
import time
from pathlib import Path

import tifffile

from .service import loop as service
from . import store
from .models.live import live_model_name
from .config import DEFAULT_CONFIG, load_config
from ..pipeline.measure import psd
from ..pipeline.synth import STYLES, SynthSpec, synth_image

SAMPLES = ("Pt-Al2O3 batch 1", "Pt-Al2O3 batch 2")


READY_TIMEOUT_S = 1800.0  # a first start on a slow CPU: export, int8 graph and guard, timing


def write_demo_config(outdir: Path, models_dir: Path | None = None) -> Path:
    """A config for the session: share and state inside outdir, the shipped models
    (or models_dir)."""
    models_dir = Path(models_dir or load_config().models.dir).resolve()
    path = outdir / "psdwatch.toml"
    path.write_text(
        f"# psdwatch demo session; defaults from {DEFAULT_CONFIG}\n"
        '[watch]\nroot = "share"\npolling = false\nsettle_seconds = 1.0\n'
        '[store]\ndatabase = "state/psdwatch.sqlite"\n[reports]\ndir = "state/reports"\n'
        f'[models]\ndir = "{models_dir.as_posix()}"\n')
    return path


def write_slowly(path: Path, data: bytes, chunks: int, pause: float) -> None:
    """Like a copy over a slow share: the file grows for a while before it is complete."""
    path.parent.mkdir(parents=True, exist_ok=True)
    step = -(-len(data) // chunks)
    with open(path, "wb") as handle:
        for start in range(0, len(data), step):
            handle.write(data[start:start + step])
            handle.flush()
            time.sleep(pause)


def tiff_bytes(image) -> bytes:
    buffer = io.BytesIO()
    tifffile.imwrite(buffer, image)
    return buffer.getvalue()


class ServiceThread(threading.Thread):
    """The real service in a thread of the demo; keeps the error that ended it."""

    def __init__(self, config_path: Path) -> None:
        super().__init__(name="service")
        self.config_path, self.stop, self.ready = config_path, threading.Event(), threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            service.run_service(self.config_path, self.stop, ready=self.ready)
        except BaseException as error:  # noqa: BLE001 - reported by the demo, in one line
            self.error = error

    def wait_ready(self, timeout: float) -> None:
        """Until the service says ready; raises with the reason when it ended first."""
        started, said = time.monotonic(), False
        while not self.ready.wait(1.0):
            if not self.is_alive() or time.monotonic() > started + timeout:
                raise RuntimeError(f"the service did not get ready: {self.error or 'timed out'}")
            if not said and time.monotonic() > started + 5:
                print("waiting for the service: a first start prepares the model (minutes)", flush=True)
                said = True


def wait_for_outcomes(db, paths: list[str], service_thread: ServiceThread, timeout: float) -> int:
    """Until every path has its final outcome in the store (or the service died, or
    timeout); returns how many have one."""
    deadline, finished = time.monotonic() + timeout, 0
    while time.monotonic() < deadline and service_thread.is_alive():
        finished = store.finished_count(db, paths)
        if finished == len(paths):
            break
        time.sleep(0.3)
    return finished


def play_frames(root: Path, images: int, size: int, pace: float) -> tuple[list[str], dict[str, list[float]]]:
    """Write the session's frames into the share; their paths and each sample's true diameters."""
    truth: dict[str, list[float]] = {s: [] for s in SAMPLES}
    paths = []
    for i in range(images):
        sample = SAMPLES[i % len(SAMPLES)]
        # Each sample is one catalyst batch with its own size distribution.
        spec = SynthSpec(size=size, bits=(8, 16)[i % 2], style=STYLES[i % len(STYLES)],
                         d_median_nm=(3.0, 5.0)[i % len(SAMPLES)], nm_per_px=0.2, seed=1000 + i)
        image, _, true = synth_image(spec)
        truth[sample] += [p["ecd_nm"] for p in true["particles"]]
        write_slowly(root / sample / f"frame_{i:03d}.tif", tiff_bytes(image), chunks=4 if i % 3 == 0 else 1,
                     pause=0.4)
        paths.append(f"{sample}/frame_{i:03d}.tif")
        time.sleep(pace)
    return paths, truth


def run_demo(outdir: Path | None, images: int = 6, size: int = 1024, pace: float = 2.0,
             models_dir: Path | None = None) -> int:
    """Play the session; print what the service did and where the reports are.
    1 when not every frame got an outcome (the service failed or timed out)."""
    outdir = Path(outdir or tempfile.mkdtemp(prefix="psdwatch-demo-"))
    outdir.mkdir(parents=True, exist_ok=True)
    config_path = write_demo_config(outdir, models_dir)
    config = load_config(config_path)
    root = Path(config.watch.root)
    root.mkdir(parents=True, exist_ok=True)
    service.setup_logging()
    worker = ServiceThread(config_path)
    print(f"demo session in {outdir}: the service watches {root}", flush=True)
    worker.start()
    try:
        worker.wait_ready(READY_TIMEOUT_S)
        paths, truth = play_frames(root, images, size, pace)
        db = store.open_store(config.store.database)
        finished = wait_for_outcomes(db, paths, worker, timeout=120 + 60 * images)
    except RuntimeError as error:
        print(f"demo: {error}", flush=True)
        return 1
    finally:
        worker.stop.set()
        worker.join(timeout=60)
    counts = store.counts(db, live_model_name(config.models.dir))
    print(f"\n{counts['done']} images measured, {counts['quarantined']} quarantined, "
          f"{counts['duplicate']} duplicate; model: {counts['model']}")
    for sample in SAMPLES:
        measured = [p["ecd_nm"] for p in store.sample_particles(db, sample) if p["ecd_nm"]]
        got, want = psd.summarise(measured, bootstrap=0), psd.summarise(truth[sample], bootstrap=0)
        if got["n"]:
            print(f"{sample}: n={got['n']} d50={got['d50']:.2f} nm (truth {want['d50']:.2f} nm, "
                  f"{(got['d50'] / want['d50'] - 1) * 100:+.1f} %), d10={got['d10']:.2f} nm, "
                  f"d90={got['d90']:.2f} nm")
    index = Path(config.reports.dir) / "index.html"
    print(f"\nreport: {index}" if index.is_file() else "\nno report was written (see the log above)")
    if finished < len(paths):
        print(f"demo: only {finished} of {len(paths)} frames were measured in time", flush=True)
        return 1
    return 0
