"""The model that serves: loaded once per process from the models dir's LIVE pointer."""

from __future__ import annotations

from daemon.config import ConfigError
from pipeline import models, segment


def load_live_model(config: dict, engine: str) -> models.Model | None:
    """The live U-Net when the engine may use one; None means the classical engine.

    Asking for "unet" with no live model is an error rather than a silent
    fallback, so a result is never labelled with an engine that did not run.
    """
    if engine == "classical":
        return None
    models_dir = config["models"]["dir"]
    name = models.live_model_name(models_dir)
    if name is None:
        if engine == "unet":
            raise ConfigError(f"[segment] engine is 'unet' but {models_dir} has no live model "
                              f"(config {config['_path']})")
        return None
    threads = int(config.get("segment", {}).get("threads", 0))
    return segment.prepare_model(models.load_model(models_dir, name), threads)
