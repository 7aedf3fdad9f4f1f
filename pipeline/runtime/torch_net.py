"""PyTorch as the network's runtime: which device and precision, and one forward pass.

torch is imported inside the functions: a one-shot `process` that ONNX Runtime
serves from a cached graph never pays for it (4 s of 7 here).
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import TYPE_CHECKING

from .cpu import has_native_bf16

if TYPE_CHECKING:
    import torch

    from .models import Model


@functools.cache
def cpu_has_native_bf16() -> bool:
    """AMX or AVX512-BF16 (runtime/cpu.py): without them bf16 is emulated and slow."""
    return has_native_bf16()


def choose_precision(setting: str) -> str:
    """The precision of a PyTorch forward pass ("int8" exists only as an ONNX Runtime graph:
    where PyTorch runs the network instead, it runs in fp32)."""
    if setting not in ("auto", "fp32", "bf16", "int8"):
        raise ValueError(f"[segment] precision must be auto, fp32, bf16 or int8, not {setting!r}")
    if setting == "auto":
        return "bf16" if cpu_has_native_bf16() else "fp32"
    return "fp32" if setting == "int8" else setting


def _nvidia_driver() -> bool:
    """The NVIDIA kernel driver is loaded (what CUDA needs before anything else)."""
    return Path("/proc/driver/nvidia/version").exists() or any(Path("/dev").glob("nvidia[0-9]*"))


def choose_device(setting: str) -> str:
    """"auto" takes a CUDA GPU when torch sees one; "cuda" without one is an error,
    not a silent fall back to a CPU run twenty times slower."""
    if setting not in ("auto", "cpu", "cuda"):
        raise ValueError(f"[segment] device must be auto, cpu or cuda, not {setting!r}")
    if setting == "cpu":
        return "cpu"
    if setting == "auto" and not _nvidia_driver():
        return "cpu"  # without the driver torch can see no GPU: not worth importing torch (1.6 s) to hear it
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if setting == "cuda":
        raise ValueError("[segment] device is 'cuda' but torch sees no CUDA GPU")
    return "cpu"


def run_network(net: torch.nn.Module, batch: torch.Tensor, precision: str) -> torch.Tensor:
    """One forward pass in the chosen precision; channels_last measures faster on CPU.
    On a GPU the tiles run in fp16 autocast (bf16 where the GPU has it)."""
    import torch

    device = next(net.parameters()).device
    batch = batch.to(device).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        if device.type == "cuda":
            half = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            with torch.autocast("cuda", dtype=half):
                return net(batch)
        if precision == "bf16":
            with torch.autocast("cpu", dtype=torch.bfloat16):
                return net(batch)
        return net(batch)


def torch_ready(model: Model, threads: int, device: str) -> Model:
    """PyTorch runs the network: eval mode, channels_last weights (after any export,
    which needs contiguous ones), on the device."""
    import torch

    if threads > 0:
        torch.set_num_threads(threads)
    model.net.eval()
    model.net.to(device, memory_format=torch.channels_last)
    return dataclasses.replace(model, runtime="torch")
