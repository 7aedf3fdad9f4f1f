"""`make bench`: speed and accuracy figures, written to bench/results.json and BENCHMARKS.md.

Each figure is measured in this one process on this machine, and the machine is
written beside it, because figures from different machines do not compare.

    python bench/run.py [--synth N] [--size 2048] [--quick]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from accuracy_bench import classical_on_real_patches, synthetic_accuracy  # noqa: E402 - bench/
from benchmarks_page import bench_run, write_benchmarks  # noqa: E402
from service_bench import cluster_throughput, daemon_drain, read_ahead_throughput  # noqa: E402
from unet_bench import magnifications, process_peak_rss, unet_speed  # noqa: E402
from psdwatch.daemon.config import load_config, settings_from_config  # noqa: E402
from psdwatch.daemon.models.live import load_live_model  # noqa: E402
from psdwatch.pipeline import runtime

DATA = REPO.parent / "shared" / "data"


def machine() -> dict:
    return {"cpu": runtime.describe_cpu(), "cores": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "native_bf16": runtime.cpu_has_native_bf16()}


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--synth", type=int, default=30, help="synthetic images to score")
    parser.add_argument("--synth-unet", type=int, default=10, help="of them, also through the U-Net")
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--runs", type=int, default=3, help="repeats of each U-Net timing")
    parser.add_argument("--drain", type=int, default=200, help="queued images the service drains (--drain 1000)")
    parser.add_argument("--drain-size", type=int, default=1024, help="edge of the drained frames")
    parser.add_argument("--cluster-frames", type=int, default=10, help="frames of the cluster comparison (classical)")
    parser.add_argument("--cluster-unet-frames", type=int, default=6,
                        help="frames of the cluster comparison with the U-Net (0: skip)")
    parser.add_argument("--read-ahead-frames", type=int, default=8, help="2048² frames of the read-ahead comparison")
    parser.add_argument("--only", choices=("accuracy", "unet", "magnifications", "daemon", "cluster", "read_ahead"),
                        help="run one part alone")
    return parser.parse_args()


def accuracy(args: argparse.Namespace, config, settings) -> dict:
    """Both engines against truth; the end-to-end time of what `auto` runs (the live U-Net when there is one)."""
    print("classical engine on the real patches ...", flush=True)
    out = classical_on_real_patches()
    print(f"{args.synth} synthetic {args.size}² images ...", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        out.update(synthetic_accuracy(Path(tmp), args.synth, args.size, settings, None, "classical_"))
    live = load_live_model(config, settings.engine)
    if live is not None:
        print(f"{args.synth_unet} synthetic {args.size}² images with the U-Net {live.name} ...", flush=True)
        with tempfile.TemporaryDirectory() as tmp:
            out.update(synthetic_accuracy(Path(tmp), args.synth_unet, args.size, settings, live, "unet_"))
    engine = "unet_" if live is not None else "classical_"
    out["end_to_end_engine"] = engine.rstrip("_")
    out["end_to_end_s_%d" % args.size] = out[f"{engine}end_to_end_s_{args.size}"]
    return out


def speed(args: argparse.Namespace, settings) -> dict:
    """The U-Net optimised against naive, and end to end at three magnifications: DESIGN's
    headline figures are what `auto` runs, the median of the three."""
    out: dict = {}
    if args.only in (None, "unet"):
        print("U-Net on 2048², optimised and naive ...", flush=True)
        out.update(unet_speed(settings, args.runs))
        out.update(process_peak_rss())
    if args.only in (None, "magnifications"):
        print("U-Net end to end at three magnifications ...", flush=True)
        out.update(magnifications(settings))
        out.update(process_peak_rss())
        mag = out.get("magnifications", {})
        if mag:
            out.update({"end_to_end_engine": "unet", "end_to_end_s_2048": mag["unet_end_to_end_median_s_2048"],
                        "naive_s_2048": mag["naive_end_to_end_median_s_2048"],
                        "speedup_vs_naive": mag["speedup_median_vs_naive"],
                        "mask_iou_vs_reference_min": mag["min_mask_iou_vs_reference"]})
    return out


def service(args: argparse.Namespace, config) -> dict:
    """A backlog drained by the service, in process against a LocalCluster, and the read-ahead."""
    out: dict = {}
    if args.only in (None, "daemon") and args.drain:
        print(f"{args.drain} queued images of {args.drain_size}² drained by psdwatch run ...", flush=True)
        out.update(daemon_drain(args.drain, args.drain_size))
    if args.only in (None, "cluster"):
        print("frames/min in process and through a LocalCluster of 2 workers ...", flush=True)
        out.update(cluster_throughput(args.cluster_frames, 2048, "classical"))
        if args.cluster_unet_frames and load_live_model(config, "auto") is not None:
            out.update(cluster_throughput(args.cluster_unet_frames, 1024, "unet"))
    if args.only in (None, "read_ahead"):
        print("frames/min through the service loop, with and without the read-ahead ...", flush=True)
        out.update(read_ahead_throughput(args.read_ahead_frames, 2048))
    return out


def derived(results: dict) -> dict:
    """Figures computed from the measured ones: the peak memory a lab PC must hold (one
    image through `psdwatch process`, its own process) and the same image with the naive
    network in place of the optimised one."""
    out = {"bench_process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if "process_peak_rss_mb_2048" in results:
        out["peak_rss_mb"] = results["process_peak_rss_mb_2048"]
    if results.get("end_to_end_engine") == "unet" and "naive_s_2048" in results:
        naive = results["end_to_end_s_2048"] - results["unet_step_s_median"]["segment_s"] + results["naive_s_2048"]
        out.update({"end_to_end_naive_s_2048": naive, "end_to_end_speedup_vs_naive": naive / results["end_to_end_s_2048"]})
    return out


def main() -> int:
    args = _arguments()
    config = load_config()
    settings = settings_from_config(config)
    results_path = REPO / "bench" / "results.json"
    results = json.loads(results_path.read_text()) if args.only and results_path.is_file() else {}
    # `--only` keeps the other parts' figures: the run id then names both runs, never one.
    run = bench_run() if not args.only else f"{results.get('run', '?')} + {args.only} in {bench_run()}"
    results.update({"date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "run": run})
    if args.only in (None, "accuracy"):
        results.update(accuracy(args, config, settings))
    results.update(speed(args, settings))
    results.update(service(args, config))
    results.update(derived(results))
    results_path.write_text(json.dumps(results, indent=2))
    write_benchmarks()
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
