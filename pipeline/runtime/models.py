"""Model files: the U-Net's architecture, its safetensors weights and its card.

Weights are only ever stored as safetensors so that loading a model file can
never run code (a pickle can). Which model is live, and promotion, are the
service's: psdwatch.daemon.models.live and psdwatch.daemon.models.promotion.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..io.files import write_atomic
from ..io.image import file_sha256

if TYPE_CHECKING:  # torch is imported where a network is built: `status` and `--help` never pay for it
    import torch

ARCHITECTURE = "Unet(tu-seresnet34, in_channels=1, classes=1)"
# How a model's input is prepared (segment.normalise; its card's "input", and
# "plain" for cards from before there was a choice).
INPUT_MODES = ("plain", "flattened")


@dataclass
class Model:
    """A U-Net and its card. The network itself is built on first use of `net`:
    where ONNX Runtime runs a graph already exported from these exact weights
    (cached by their hash), neither torch nor the network library is imported,
    which is most of a one-shot `psdwatch process`'s start-up (4 s of 7 here)."""
    name: str
    sha256: str
    _net: torch.nn.Module | None
    card: dict
    # Set by runtime.prepare_model when an exported graph runs the network
    # (float32 NCHW tiles in, logits out); None = PyTorch runs it.
    runner: Callable | None = None
    # Probability above which a pixel is particle: chosen on validation when the
    # model was trained (its card's "threshold"); 0.5 for models without one.
    threshold: float = 0.5
    # How the network runs, once prepared (runtime.prepare_model): "torch",
    # "onnxruntime" (fp32) or "onnxruntime-int8".
    runtime: str = "torch"
    weights: Path | None = None  # where `net` is loaded from when first used
    # How the frame is prepared for the network (segment.INPUT_MODES; the card's "input").
    input_mode: str = "plain"
    # The precision of a PyTorch forward pass, chosen once by runtime.prepare_model.
    precision: str = "fp32"

    @property
    def net(self) -> torch.nn.Module:
        if self._net is None:
            if self.weights is None:
                raise ValueError(f"model {self.name!r} has neither a network nor a weights file")
            self._net = load_weights(build_unet(), self.weights).eval()
        return self._net


def build_unet() -> torch.nn.Module:
    """The study's network, with random weights: no ImageNet weights can be
    fetched here, and a one-channel HAADF input would not use them as-is."""
    import segmentation_models_pytorch as smp

    return smp.Unet("tu-seresnet34", encoder_weights=None, in_channels=1, classes=1)


def save_model(net: torch.nn.Module, models_dir: Path, name: str, card: dict,
               half: bool = False) -> Path:
    """Write <name>.safetensors and <name>.json; the card gets the architecture
    and the weights' hash so a result can always be traced to its exact model."""
    import torch
    from safetensors.torch import save

    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    dtype = torch.float16 if half else torch.float32
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in net.state_dict().items()}
    tensors = {k: (v.to(dtype) if v.is_floating_point() else v) for k, v in tensors.items()}
    weights = models_dir / f"{name}.safetensors"
    write_atomic(weights, save(tensors))
    card = {**card, "name": name, "architecture": ARCHITECTURE,
            "weights_sha256": file_sha256(weights)}
    write_atomic(models_dir / f"{name}.json", json.dumps(card, indent=2).encode())
    return weights


def load_model(models_dir: Path, name: str) -> Model:
    """Load weights without unpickling (safetensors) into a fresh network."""
    models_dir = Path(models_dir)
    weights = models_dir / f"{name}.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"model {name!r} has no weights file {weights}")
    card = load_card(models_dir, name) or {}
    input_mode = str(card.get("input", "plain"))
    if input_mode not in INPUT_MODES:
        raise ValueError(f"model {name!r} wants its input {input_mode!r}, which this version of "
                         f"psdwatch does not know ({', '.join(INPUT_MODES)}): update psdwatch")
    return Model(name=name, sha256=file_sha256(weights), _net=None, card=card,
                 threshold=float(card.get("threshold", 0.5)), weights=weights, input_mode=input_mode)


def load_weights(net: torch.nn.Module, weights: Path) -> torch.nn.Module:
    """Fill `net` from a safetensors file (fp16 or fp32 on disk, fp32 in memory)."""
    from safetensors.torch import load_file

    state = {k: v.float() if v.is_floating_point() else v
             for k, v in load_file(str(weights)).items()}
    net.load_state_dict(state)
    return net


def resolve_weights(models_dir: Path, init: str) -> Path:
    """The weights file `init` names: a model in the dir, or a path. (Which model is
    live is the service's business: psdwatch.daemon.models.live resolves "live".)"""
    named = Path(models_dir) / f"{init}.safetensors"
    if named.is_file():
        return named
    if Path(init).is_file():
        return Path(init)
    raise FileNotFoundError(f"no model or weights file {init!r} (models dir {models_dir})")


def load_card(models_dir: Path, name: str) -> dict | None:
    path = Path(models_dir) / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None
