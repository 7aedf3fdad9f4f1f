"""How a model runs on this machine: the one home of device, precision, runtime,
tiling, the int8 graph and its guard, and the measured choice between them.

    model = runtime.prepare(models_dir, name, device="auto", precision="auto", runtime="auto")
    prob = runtime.predict_probability(model, frame)

`prepare` is called once per model and process (`process`, the service, reprocess,
the bench, each Dask worker) and returns a new, ready Model: which runtime holds the
network (PyTorch on a GPU; on a CPU ONNX Runtime fp32 or int8 or PyTorch bf16, the
fastest measured once per model and CPU), in which precision; nothing is re-chosen
per image. The way from a card to a running network:

    models.load_model (card, weights) -> prepare -> fastest.choose (measured, cached)
        -> onnx.fp32_graph / int8.graph (exported, quantised and guarded, cached)
        -> tiles.predict_probability per frame

Inside: torch_net (device, precision, a PyTorch forward pass), onnx (export, cache,
ONNX Runtime sessions), int8 (quantisation and its accuracy guard), fastest (the
timing choice), tiles (a whole frame in overlapping tiles), cpu (what the CPU is and
which int8 and bf16 kernels it has).
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
from pathlib import Path

from .cpu import describe as describe_cpu
from .models import Model, load_model
from .model_input import FLATTEN_RADIUS_PX, flatten_background, normalise
from . import onnx
from .tiles import plan_tiles, predict_probability
from .torch_net import choose_device, choose_precision, cpu_has_native_bf16, run_network, torch_ready

__all__ = ["prepare", "prepare_model", "predict_probability", "plan_tiles", "normalise", "flatten_background",
           "FLATTEN_RADIUS_PX", "choose_device", "choose_precision",
           "cpu_has_native_bf16", "describe_cpu", "run_network"]

log = logging.getLogger("psdwatch")
PATH_RUNTIMES = {"onnxruntime-fp32": "onnxruntime", "onnxruntime-int8": "onnxruntime-int8", "torch-bf16": "torch"}


def prepare(models_dir: Path, name: str, device: str = "auto", precision: str = "auto",
            runtime: str = "auto", threads: int = 0) -> Model:
    """Model `name` of models_dir, ready to run as the [segment] settings say."""
    chosen_device = choose_device(device)
    if chosen_device == "cuda":
        how = "torch"
    elif precision == "int8":
        how = "onnxruntime-int8"
    elif precision == "auto" and runtime == "auto" and onnx.available():
        how = "fastest"  # measured on this CPU once per model (runtime/fastest.py)
    else:
        how = onnx.choose_runtime(runtime, choose_precision(precision))
    model = prepare_model(load_model(models_dir, name), threads, how, models_dir, chosen_device,
                          choose_precision(precision))
    log.info("model %s runs on %s (%s)", name, model.runtime, chosen_device)
    return model


def prepare_model(model: Model, threads: int = 0, runtime: str = "torch", models_dir: Path | None = None,
                  device: str = "cpu", precision: str = "fp32") -> Model:
    """A ready copy of `model`: on a GPU PyTorch; on a CPU the ONNX Runtime session when
    that runtime was chosen ("fastest": measured). Where ONNX Runtime runs a graph
    already cached for these weights, the PyTorch network is never built."""
    from . import fastest, int8

    models_dir = models_dir or Path(tempfile.gettempdir())
    if device == "cuda":
        return dataclasses.replace(torch_ready(model, threads, device), precision=precision)
    if runtime == "fastest":
        try:
            runtime = PATH_RUNTIMES[fastest.choose(model, models_dir, threads)]
        except Exception as error:  # noqa: BLE001 - a failed measurement must not stop the service
            log.warning("could not compare the network's paths (%s: %s); ONNX Runtime fp32 runs it",
                        type(error).__name__, error)
            runtime = "onnxruntime"
    if runtime in ("onnxruntime", "onnxruntime-int8"):
        try:
            graph = None
            if runtime.endswith("int8"):
                graph = int8.graph(lambda: model.net, model.sha256, models_dir, model.threshold,
                                   int8.ranges_path(models_dir, model.name), model.input_mode)
                if graph is None:
                    log.warning("the int8 graph failed its accuracy guard: the network runs in fp32")
            run = onnx.session_runner(graph or onnx.fp32_graph(lambda: model.net, model.sha256, models_dir), threads)
            return dataclasses.replace(model, runner=run, runtime=run.runtime, precision="fp32")  # type: ignore[attr-defined]
        except Exception as error:  # noqa: BLE001 - an export or runtime failure must not stop the service
            log.warning("ONNX Runtime unavailable for %s (%s: %s); PyTorch runs it", model.name,
                        type(error).__name__, error)
    return dataclasses.replace(torch_ready(model, threads, device), precision=precision)
