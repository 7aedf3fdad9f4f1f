"""The U-Net exported once to ONNX and run by ONNX Runtime.

On CPUs without native bf16 (AVX2 lab PCs) ONNX Runtime's fp32 kernels run the
same network faster than eager PyTorch with the same masks (bench/, issue 5);
on CPUs with AMX, PyTorch's bf16 autocast is faster still, so the choice is
made per machine and model by timing them (`runtime.fastest.choose`, called once
from `runtime.prepare`); `choose_runtime` here only resolves an explicit
`[segment] runtime` setting. The exported graph is cached by the
weights' hash, so it is built once per model, not once per process; an ONNX
file is a protobuf, not a pickle, so loading it runs no code.
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..io.files import write_atomic

if TYPE_CHECKING:  # torch only where a graph must be exported
    import torch

log = logging.getLogger("psdwatch")

RUNTIMES = ("auto", "torch", "onnxruntime")


def available() -> bool:
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def choose_runtime(setting: str, precision: str) -> str:
    """"auto" = ONNX Runtime for fp32 when installed; PyTorch for bf16 (ONNX
    Runtime has no bf16 path on CPU) or when it is missing."""
    if setting not in RUNTIMES:
        raise ValueError(f"[segment] runtime must be one of {', '.join(RUNTIMES)}, not {setting!r}")
    if setting == "auto":
        return "onnxruntime" if precision == "fp32" and available() else "torch"
    if setting == "onnxruntime" and not available():
        raise ValueError("[segment] runtime is 'onnxruntime' but the onnxruntime package is not installed")
    return setting


def export(net: torch.nn.Module, path: Path) -> Path:
    """ONNX graph with batch, height and width free (tiles are any multiple of 32)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = net.eval().to(memory_format=torch.contiguous_format)
    # The TorchScript exporter: deprecated, but it needs only `onnx` and takes
    # seconds; the dynamo exporter needs onnxscript too and took 4x longer here.
    def write(f) -> None:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.onnx.export(net, (torch.zeros(1, 1, 256, 256),), f, dynamo=False, opset_version=17,
                              input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                                            "logits": {0: "batch", 2: "height", 3: "width"}})
    return write_atomic(path, write)


def cache_dir(models_dir: Path) -> Path:
    """Beside the models when that folder is writable, else the temp folder
    (the bundled models dir is read-only under the systemd unit)."""
    candidate = Path(models_dir) / ".onnx-cache"
    try:
        candidate.mkdir(parents=True, exist_ok=True)
        probe = candidate / f".probe.{os.getpid()}"
        probe.touch()
        probe.unlink()
        return candidate
    except OSError:
        return Path(tempfile.gettempdir()) / "psdwatch-onnx"


def cached_graph(models_dir: Path, sha256: str) -> Path:
    """Where the fp32 graph of the weights with hash ``sha256`` is cached (keyed by the
    weights, so a retrained model never runs an old graph); the int8 graphs and the
    timing verdict (fastest.py) are named after it."""
    return cache_dir(models_dir) / f"{sha256[:16]}.onnx"


def fp32_graph(network: Callable[[], torch.nn.Module], sha256: str, models_dir: Path) -> Path:
    """The model's exported graph, from the cache (by the weights' hash) or exported now
    (`network()` gives the network: it is built only when the graph must be exported)."""
    if sha256:
        path = cached_graph(models_dir, sha256)
    else:  # weights with no file behind them (a network in memory): nothing to key a cache on
        path = Path(tempfile.mkdtemp(prefix="psdwatch-onnx-")) / "model.onnx"
    if not path.is_file():
        log.info("exporting the model to ONNX once: %s", path)
        export(network(), path)
    return path


def session_runner(path: Path, threads: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """A function from a float32 NCHW batch of tiles to their logits, by ONNX Runtime on `path`."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = max(0, threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {"image": np.ascontiguousarray(batch, np.float32)})[0]

    run.runtime = "onnxruntime-int8" if path.name.endswith(".int8.onnx") else "onnxruntime"  # type: ignore[attr-defined]
    return run
