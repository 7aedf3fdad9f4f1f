"""Model files: the U-Net's architecture, its safetensors weights, its card, and
which one is live.

Weights are only ever stored as safetensors so that loading a model file can
never run code (a pickle can). The live model is named by the one-line file
LIVE in the models dir, replaced atomically, so a reader sees the old or the new
model and never half of one.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .files import write_atomic
from .io import file_sha256

if TYPE_CHECKING:  # torch is imported where a network is built: `status` and `--help` never pay for it
    import torch

ARCHITECTURE = "Unet(tu-seresnet34, in_channels=1, classes=1)"
LIVE_FILE = "LIVE"


@dataclass
class Model:
    name: str
    sha256: str
    net: torch.nn.Module
    card: dict
    # Set by segment.prepare_model when an exported graph runs the network
    # (float32 NCHW tiles in, logits out); None = PyTorch runs it.
    runner: Callable | None = None
    # Probability above which a pixel is particle: chosen on validation when the
    # model was trained (its card's "threshold"); 0.5 for models without one.
    threshold: float = 0.5


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
    net = load_weights(build_unet(), weights)
    net.eval()
    return Model(name=name, sha256=file_sha256(weights), net=net, card=card,
                 threshold=float(card.get("threshold", 0.5)))


def load_weights(net: torch.nn.Module, weights: Path) -> torch.nn.Module:
    """Fill `net` from a safetensors file (fp16 or fp32 on disk, fp32 in memory)."""
    from safetensors.torch import load_file

    state = {k: v.float() if v.is_floating_point() else v
             for k, v in load_file(str(weights)).items()}
    net.load_state_dict(state)
    return net


def resolve_weights(models_dir: Path, init: str) -> Path:
    """The weights file `init` names: "live", a model in the dir, or a path."""
    if init == "live":
        name = live_model_name(models_dir)
        if name is None:
            raise FileNotFoundError(f"no live model in {models_dir} to start from")
        return Path(models_dir) / f"{name}.safetensors"
    named = Path(models_dir) / f"{init}.safetensors"
    if named.is_file():
        return named
    if Path(init).is_file():
        return Path(init)
    raise FileNotFoundError(f"no model or weights file {init!r} (models dir {models_dir})")


def load_card(models_dir: Path, name: str) -> dict | None:
    path = Path(models_dir) / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def live_model_name(models_dir: Path) -> str | None:
    """The live model's name, or None when there is none (or its weights are gone)."""
    live = Path(models_dir) / LIVE_FILE
    if not live.is_file():
        return None
    name = live.read_text().strip()
    if not name or not (Path(models_dir) / f"{name}.safetensors").is_file():
        return None
    return name


def set_live(models_dir: Path, name: str) -> None:
    """Point LIVE at a model; atomic so a daemon reading it never sees half a name."""
    if not (Path(models_dir) / f"{name}.safetensors").is_file():
        raise FileNotFoundError(f"no model {name!r} in {models_dir}")
    write_atomic(Path(models_dir) / LIVE_FILE, f"{name}\n".encode())


def list_models(models_dir: Path) -> list[dict]:
    """Every model card in the dir, newest first, with `live` set on the live one."""
    live = live_model_name(models_dir)
    cards = []
    for path in sorted(Path(models_dir).glob("*.json")):
        if (path.with_suffix(".safetensors")).is_file():
            card = json.loads(path.read_text())
            card["live"] = card.get("name", path.stem) == live
            cards.append(card)
    return sorted(cards, key=lambda c: c.get("date", ""), reverse=True)
