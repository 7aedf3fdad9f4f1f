"""The model that serves: loaded once per process from the models dir's LIVE pointer."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from .config import DEFAULT_CONFIG, ConfigError
from ..pipeline import models, onnx_runtime, segment

log = logging.getLogger("psdwatch")

BUNDLED_MODELS = DEFAULT_CONFIG.parent / "models"


def install_starter(config: dict) -> str | None:
    """Copy the starter model that ships with psdwatch into a models dir that has
    none yet, and make it live, so a service whose models dir lives in its state
    folder starts with the U-Net, not the classical engine. A dir that already
    holds any model is the lab's own and is left alone; `[models] starter =
    false` turns this off. Returns the installed model's name."""
    models_dir = Path(config["models"]["dir"])
    if not config["models"]["starter"] or models_dir.resolve() == BUNDLED_MODELS.resolve():
        return None
    if models_dir.is_dir() and any(models_dir.glob("*.safetensors")):
        return None
    name = models.live_model_name(BUNDLED_MODELS)
    if name is None:
        return None
    models_dir.mkdir(parents=True, exist_ok=True)
    for suffix in (".json", ".safetensors"):  # weights last: a model exists once its weights do
        shutil.copyfile(BUNDLED_MODELS / f"{name}{suffix}", models_dir / f"{name}{suffix}")
    models.set_live(models_dir, name)
    log.info("installed the starter model %s into %s", name, models_dir)
    return name


def load_live_model(config: dict, engine: str) -> models.Model | None:
    """The live U-Net when the engine may use one; None means the classical engine.

    Asking for "unet" with no live model is an error rather than a silent
    fallback, so a result is never labelled with an engine that did not run.
    """
    if engine == "classical":
        return None
    install_starter(config)
    models_dir = config["models"]["dir"]
    name = models.live_model_name(models_dir)
    if name is None:
        if engine == "unet":
            raise ConfigError(f"[segment] engine is 'unet' but {models_dir} has no live model "
                              f"(config {config['_path']})")
        return None
    seg = config["segment"]
    device = segment.choose_device(seg["device"])
    runtime = "torch" if device == "cuda" else onnx_runtime.choose_runtime(
        seg["runtime"], segment.choose_precision(seg["precision"]))
    log.info("model %s runs on %s (%s)", name, runtime, device)
    return segment.prepare_model(models.load_model(models_dir, name), seg["threads"], runtime, models_dir,
                                 device=device)
