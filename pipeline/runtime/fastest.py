"""Which way to run the network on this CPU, measured once per model and machine.

Why measured, not guessed: the ranking depends on the chip. With AVX-512 VNNI
(Zen 4) ONNX Runtime's int8 graph ran a 512² tile pair 3-4x faster than its
fp32 graph; on an AVX2-only EPYC (family 23, no VNNI) the int8 graph (7-bit weights,
int8.py) took 1.81 s to fp32's 1.75 s, so fp32 is kept there, and PyTorch's bf16
is fast only with AMX or AVX512-BF16 (emulated, it is 6x slower than fp32).
So `[segment] precision = "auto"` times the candidates that may run here (fp32
always; int8 only if its accuracy guard accepted it, pipeline/runtime/int8.py; bf16 only
on native bf16) on two tiles and keeps the fastest. The verdict is cached by the
weights' hash, the CPU and the thread count: a service start measures nothing twice.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from ..io.files import write_atomic
from .cpu import cpuinfo
from .models import Model

log = logging.getLogger("psdwatch")
PATHS = ("onnxruntime-fp32", "onnxruntime-int8", "torch-bf16")


def cpu_signature(threads: int) -> str:
    """The CPU model, its flags and the threads used: what the ranking depends on."""
    key = f"{cpuinfo().get('model name', '')}|{cpuinfo().get('flags', '')}|{os.cpu_count()}|{threads}"
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def _seconds(run, batch, repeats: int = 2) -> float:
    run(batch)  # warm-up: first-call allocations and kernel choices
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        run(batch)
        best = min(best, time.perf_counter() - t)
    return best


def choose(model: Model, models_dir: Path, threads: int = 0) -> str:
    """The fastest of PATHS that may run here, for this model; cached per CPU."""
    from . import int8, onnx
    from .torch_net import cpu_has_native_bf16, run_network

    cache = onnx.cached_graph(models_dir, model.sha256).with_suffix(".fastest.json")
    signature = cpu_signature(threads)
    try:
        known = json.loads(cache.read_text())
        if known.get("cpu") == signature and known.get("choice") in PATHS:
            return known["choice"]
    except (OSError, ValueError):
        pass
    batch = np.stack(int8.tiles(int8.GUARD[:2], 9100))[:, None]
    runs = {"onnxruntime-fp32": onnx.session_runner(
        onnx.fp32_graph(lambda: model.net, model.sha256, models_dir), threads)}
    ranges = int8.ranges_path(models_dir, model.name)
    if (graph := int8.graph(lambda: model.net, model.sha256, models_dir, model.threshold,
                                         ranges, model.input_mode)) is not None:
        runs["onnxruntime-int8"] = onnx.session_runner(graph, threads)
    if cpu_has_native_bf16():
        import torch

        net = model.net.eval().to(memory_format=torch.channels_last)
        runs["torch-bf16"] = lambda b: run_network(net, torch.from_numpy(b), "bf16")
    times = {name: round(_seconds(run, batch), 4) for name, run in runs.items()}
    choice = min(times, key=times.get)
    log.info("network paths on this CPU, s per two 512² tiles: %s; using %s", times, choice)
    try:
        write_atomic(cache, json.dumps({"cpu": signature, "times": times, "choice": choice}, indent=1))
    except OSError:
        pass  # measured again at the next start
    return choice
