"""`psdwatch demo`: a microscope session played end to end.

A temporary export share gets synthetic HAADF frames (with known truth) in two
sample folders, at a microscope's pace, some written slowly in chunks the way a
network copy arrives; the real service watches it, measures each frame, stores
the particles and regenerates the reports. At the end each sample's measured
d50 is set against the truth, and the path of index.html is printed.
"""

from __future__ import annotations

import io
import tempfile
import threading
import time
from pathlib import Path

import tifffile

from . import service, store
from .config import DEFAULT_CONFIG, load_config
from ..pipeline import psd
from ..pipeline.synth import STYLES, SynthSpec, synth_image

SAMPLES = ("Pt-Al2O3 batch 1", "Pt-Al2O3 batch 2")


def write_demo_config(outdir: Path) -> Path:
    """A config for the session: share and state inside outdir, the shipped models."""
    models_dir = load_config()["models"]["dir"]
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


def run_demo(outdir: Path | None, images: int = 6, size: int = 1024, pace: float = 2.0) -> int:
    """Play the session; print what the service did and where the reports are."""
    outdir = Path(outdir or tempfile.mkdtemp(prefix="psdwatch-demo-"))
    outdir.mkdir(parents=True, exist_ok=True)
    config_path = write_demo_config(outdir)
    config = load_config(config_path)
    Path(config["watch"]["root"]).mkdir(parents=True, exist_ok=True)
    service.setup_logging()
    stop = threading.Event()
    worker = threading.Thread(target=service.run_service, args=(config_path, stop), name="service")
    print(f"demo session in {outdir}: the service watches {config['watch']['root']}", flush=True)
    worker.start()
    truth: dict[str, list[float]] = {s: [] for s in SAMPLES}
    try:
        for i in range(images):
            sample = SAMPLES[i % len(SAMPLES)]
            # Each sample is one catalyst batch with its own size distribution.
            spec = SynthSpec(size=size, bits=(8, 16)[i % 2], style=STYLES[i % len(STYLES)],
                             d_median_nm=(3.0, 5.0)[i % len(SAMPLES)], nm_per_px=0.2, seed=1000 + i)
            image, _, true = synth_image(spec)
            truth[sample] += [p["ecd_nm"] for p in true["particles"]]
            target = Path(config["watch"]["root"]) / sample / f"frame_{i:03d}.tif"
            write_slowly(target, tiff_bytes(image), chunks=4 if i % 3 == 0 else 1, pause=0.4)
            time.sleep(pace)
        time.sleep(config["watch"]["settle_seconds"] + 1)
        db = store.open_store(config["store"]["database"])
        service.wait_until_idle(db, timeout=120 + 30 * images)
    finally:
        stop.set()
        worker.join(timeout=60)
    counts = store.counts(db)
    print(f"\n{counts['done']} images measured, {counts['quarantined']} quarantined, "
          f"{counts['duplicate']} duplicate; model: {counts['model']}")
    for sample in SAMPLES:
        measured = [p["ecd_nm"] for p in store.sample_particles(db, sample) if p["ecd_nm"]]
        got, want = psd.summarise(measured, bootstrap=0), psd.summarise(truth[sample], bootstrap=0)
        if got["n"]:
            print(f"{sample}: n={got['n']} d50={got['d50']:.2f} nm (truth {want['d50']:.2f} nm, "
                  f"{(got['d50'] / want['d50'] - 1) * 100:+.1f} %), d10={got['d10']:.2f} nm, "
                  f"d90={got['d90']:.2f} nm")
    print(f"\nreport: {Path(config['reports']['dir']) / 'index.html'}")
    return 0
