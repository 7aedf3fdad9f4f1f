"""`psdwatch demo`: a microscope session played end to end on synthetic images.

It writes synthetic HAADF frames (with known truth) into sample folders of a
temporary share, measures each one as it arrives, and compares each sample's
measured PSD with the truth, so a new user sees in a few minutes what psdwatch
does and how close it gets.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import numpy as np

from daemon.config import load_config, settings_from_config
from daemon.live_model import load_live_model
from daemon.samples import sample_of
from pipeline import psd
from pipeline.analyse import analyse_image, analysis_record
from pipeline.synth import SynthSpec, STYLES, synth_image, write_example

SAMPLES = ("Pt-Al2O3_batch1", "Pt-Al2O3_batch2")


def run_demo(outdir: Path | None, images: int = 6, size: int = 1024) -> int:
    """Play the session; print one line per image and a PSD per sample."""
    outdir = Path(outdir or tempfile.mkdtemp(prefix="psdwatch-demo-"))
    share, results = outdir / "share", outdir / "results"
    results.mkdir(parents=True, exist_ok=True)
    config = load_config()
    settings = settings_from_config(config)
    model = load_live_model(config, settings.engine)
    measured: dict[str, list[float]] = {s: [] for s in SAMPLES}
    truth: dict[str, list[float]] = {s: [] for s in SAMPLES}
    print(f"demo session in {outdir}")
    for i in range(images):
        sample = SAMPLES[i % len(SAMPLES)]
        # Each sample is one catalyst batch: its own size distribution.
        spec = SynthSpec(size=size, bits=(8, 16)[i % 2], style=STYLES[i % len(STYLES)],
                         d_median_nm=(3.0, 5.0)[i % len(SAMPLES)], nm_per_px=0.2, seed=1000 + i)
        image, mask, true = synth_image(spec)
        path = write_example(share / sample, f"frame_{i:03d}", image, mask, true)
        started = time.perf_counter()
        analysis = analyse_image(path, settings, model)
        record = analysis_record(analysis, sample_of(path, share))
        (results / f"{sample}__frame_{i:03d}.json").write_text(json.dumps(record))
        measured[sample] += [p["ecd_nm"] for p in record["particles"] if p["ecd_nm"]]
        truth[sample] += [p["ecd_nm"] for p in true["particles"]]
        print(f"{path.relative_to(share)}: {record['psd']['n']} particles, "
              f"scale {record['scale_source']} {record['scale_text']}, "
              f"{time.perf_counter() - started:.1f} s, flags: {', '.join(record['flags']) or 'none'}")
    for sample in SAMPLES:
        got, want = psd.summarise(measured[sample]), psd.summarise(truth[sample])
        if got["n"]:
            print(f"{sample}: n={got['n']} d50={got['d50']:.2f} nm (truth {want['d50']:.2f} nm, "
                  f"{(got['d50'] / want['d50'] - 1) * 100:+.1f} %), d10={got['d10']:.2f}, "
                  f"d90={got['d90']:.2f} nm, engine {model.name if model else 'classical'}")
    print(f"results: {results}")
    return 0
