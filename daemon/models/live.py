"""The model that serves: loaded once per process from the models dir's LIVE pointer."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from ..config import DEFAULT_CONFIG, Config, ConfigError, runtime_options
from ...pipeline.settings import RuntimeOptions
from ...pipeline.runtime import models
from ...pipeline.io.files import write_atomic

log = logging.getLogger("psdwatch")

BUNDLED_MODELS = DEFAULT_CONFIG.parent / "models"
# The live model is named by the one-line file LIVE in the models dir, replaced
# atomically, so a reader sees the old or the new model and never half of one.
LIVE_FILE = "LIVE"


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


def resolve_init(models_dir: Path, init: str | None) -> str | None:
    """A training's starting weights: "live" becomes the live model's name."""
    if init != "live":
        return init
    name = live_model_name(models_dir)
    if name is None:
        raise FileNotFoundError(f"no live model in {models_dir} to start from")
    return name


def install_starter(config: Config) -> str | None:
    """Copy the starter model that ships with psdwatch into a models dir that has
    none yet, and make it live, so a service whose models dir lives in its state
    folder starts with the U-Net, not the classical engine. A dir that already
    holds any model is the lab's own and is left alone; `[models] starter =
    false` turns this off. Returns the installed model's name."""
    models_dir = Path(config.models.dir)
    if not config.models.starter or models_dir.resolve() == BUNDLED_MODELS.resolve():
        return None
    if models_dir.is_dir() and any(models_dir.glob("*.safetensors")):
        return None
    name = live_model_name(BUNDLED_MODELS)
    if name is None:
        return None
    models_dir.mkdir(parents=True, exist_ok=True)
    for suffix in (".json", ".int8-ranges", ".safetensors"):  # weights last: a model exists once they do
        if (BUNDLED_MODELS / f"{name}{suffix}").is_file():  # int8 ranges: models trained since they exist
            shutil.copyfile(BUNDLED_MODELS / f"{name}{suffix}", models_dir / f"{name}{suffix}")
    set_live(models_dir, name)
    log.info("installed the starter model %s into %s", name, models_dir)
    return name


def engine_reason(config: Config, engine: str, model: models.Model | None) -> str:
    """Why this engine measures, in one line: the model and the folder it came
    from, the configuration that asked for the classical engine, or what is
    missing for the U-Net. A run without a usable model says so (the CLI, the
    JSON's engine_reason, the service log): a classical result never passes for
    the U-Net's."""
    models_dir = Path(config.models.dir)
    if model is not None:
        return f"U-Net {model.name} from {models_dir}"
    if engine == "classical":
        return f"[segment] engine = \"classical\" (config {config.source})"
    live = models_dir / LIVE_FILE
    if not models_dir.is_dir():
        missing = f"the models folder {models_dir} does not exist"
    elif not live.is_file():
        missing = f"no {LIVE_FILE} file in {models_dir}"
    else:
        missing = f"{live} names {live.read_text().strip()!r}, whose .safetensors is not in {models_dir}"
    return f"no usable model ({missing}): the classical engine measures"


def load_live_model(config: Config, engine: str) -> models.Model | None:
    """The live U-Net when the engine may use one; None means the classical engine.

    Asking for "unet" with no live model is an error rather than a silent
    fallback, so a result is never labelled with an engine that did not run.
    """
    if engine == "classical":
        return None
    install_starter(config)
    models_dir = config.models.dir
    name = live_model_name(models_dir)
    if name is None:
        if engine == "unet":
            raise ConfigError(f"[segment] engine is 'unet' but {models_dir} has no live model "
                              f"(config {config.source})")
        return None
    return prepare_named(models_dir, name, runtime_options(config))


def prepare_named(models_dir: Path, name: str, options: RuntimeOptions) -> models.Model:
    """Model `name` of models_dir, ready to run as [segment] (device, precision,
    runtime, threads: config.runtime_options) says: here, and once per process on
    a Dask worker."""
    from ...pipeline import runtime  # torch: only where a network runs

    return runtime.prepare(models_dir, name, options.device, options.precision, options.runtime, options.threads)
