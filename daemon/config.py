"""Configuration: the embedded config.toml, overlaid by the user's file.

Every key has its default in the embedded file, so a user's config holds only
what differs. Paths are resolved against the folder of the file that set them,
so a config can be moved together with its share and state folders.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from ..pipeline.analyse import Settings

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config.toml"
PATH_KEYS = (("watch", "root"), ("store", "database"), ("reports", "dir"), ("models", "dir"),
             ("annotations", "dir"), ("annotations", "proposals_dir"))


class ConfigError(ValueError):
    """A config file that cannot be used, with the file's path in the message."""


def _read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None


def _resolve_paths(config: dict, base: Path) -> None:
    for section, key in PATH_KEYS:
        value = config.get(section, {}).get(key)
        if isinstance(value, str):
            config[section][key] = (base / Path(value).expanduser()).resolve()


def load_config(path: str | Path | None = None) -> dict:
    """The effective configuration as a dict of sections, with absolute Paths."""
    config = _read(DEFAULT_CONFIG)
    _resolve_paths(config, DEFAULT_CONFIG.parent)
    if path is not None:
        path = Path(path).resolve()
        user = _read(path)
        _resolve_paths(user, path.parent)
        for section, values in user.items():
            if not isinstance(values, dict):
                raise ConfigError(f"config file {path}: top-level key {section!r} must be a [section]")
            config.setdefault(section, {}).update(values)
        config["_path"] = path
    else:
        config["_path"] = DEFAULT_CONFIG
    return config


def settings_from_config(config: dict) -> Settings:
    """The pipeline's knobs out of the config's sections."""
    seg, meas, psd_cfg, scale_cfg = (config.get(k, {}) for k in ("segment", "measure", "psd", "scale"))
    defaults = Settings()
    return Settings(
        engine=seg.get("engine", defaults.engine),
        tile=int(seg.get("tile", defaults.tile)),
        overlap=int(seg.get("overlap", defaults.overlap)),
        precision=seg.get("precision", defaults.precision),
        runtime=seg.get("runtime", defaults.runtime),
        threshold=None if seg.get("threshold", "auto") == "auto" else float(seg["threshold"]),
        fallback_nm_per_px=scale_cfg.get("nm_per_px"),
        disagreement_pct=float(scale_cfg.get("disagreement_pct", defaults.disagreement_pct)),
        ocr=bool(scale_cfg.get("ocr", defaults.ocr)),
        min_diameter_nm=float(meas.get("min_diameter_nm", defaults.min_diameter_nm)),
        min_area_px=int(meas.get("min_area_px", defaults.min_area_px)),
        watershed=bool(meas.get("watershed", defaults.watershed)),
        exclude_border=bool(meas.get("exclude_border", defaults.exclude_border)),
        min_particles=int(psd_cfg.get("min_particles", defaults.min_particles)),
        bootstrap=int(psd_cfg.get("bootstrap", defaults.bootstrap)),
        size_aware=bool(seg.get("size_aware", defaults.size_aware)),
        target_diameter_px=float(seg.get("target_diameter_px", defaults.target_diameter_px)),
        max_excluded_fraction=float(seg.get("max_excluded_fraction", defaults.max_excluded_fraction)),
        skip_bright_field=bool(seg.get("skip_bright_field", defaults.skip_bright_field)),
    )
