"""Configuration: one typed schema holding every key and its only default.

config.toml at the top of the project documents each key (a test proves it
holds exactly these defaults); a user's file holds only what differs. A typo
or a wrong type is not ignored: it stops every command with one line naming
the file, the section and the key, because a misspelt `engin = "unet"` that
silently runs the default is a wrong number that looks right.

Paths are resolved against the folder of the file that set them, so a config
can be moved together with its share and state folders. The rest of psdwatch
reads the validated result, one typed `Config` object passed through
(`config.watch.root`); the sections the analysis reads ([scale], [segment],
[measure], [psd]) are the pipeline's own models (pipeline/settings.py), composed
here, so no default is written twice.
The embedded defaults are relative to the project folder of a checkout; an
installed psdwatch (pip install, a wheel) lives in site-packages, no place for a
share, a store or trained models, so there they are relative to $PSDWATCH_HOME,
else the user's data folder ($XDG_DATA_HOME/psdwatch, ~/.local/share/psdwatch).
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, StrictBool, StrictFloat, StrictInt, StrictStr, ValidationError, field_validator

from ..pipeline.settings import Measure, Psd, RuntimeOptions, Scale, Section as _Section, Segment, Settings

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config.toml"
PROJECT = DEFAULT_CONFIG.parent


def is_checkout(folder: Path = PROJECT) -> bool:
    """A source tree (its pyproject.toml beside config.toml), not an installed copy."""
    return (folder / "pyproject.toml").is_file()


def defaults_home() -> Path:
    """The folder the embedded defaults' relative paths are resolved against."""
    if is_checkout():
        return PROJECT
    if os.environ.get("PSDWATCH_HOME"):
        return Path(os.environ["PSDWATCH_HOME"]).expanduser()
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share").expanduser() / "psdwatch"

class ConfigError(ValueError):
    """A config file that cannot be used, with the file's path in the message."""


class Watch(_Section):
    root: Path = Path("share")
    polling: StrictBool | Literal["auto"] = "auto"
    poll_interval: StrictFloat = Field(5.0, gt=0)
    settle_seconds: StrictFloat = Field(2.0, ge=0)
    rescan_seconds: StrictFloat = Field(600.0, gt=0)
    patterns: list[StrictStr] = ["*.tif", "*.tiff", "*.dm3", "*.dm4", "*.emd", "*.emi",
                                 "*.png", "*.jpg", "*.jpeg"]
    sample_pattern: StrictStr | None = None

    @field_validator("sample_pattern")
    @classmethod
    def _named_group(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                compiled = re.compile(value)
            except re.error as error:
                raise ValueError(f"not a regular expression ({error})") from None
            if "sample" not in compiled.groupindex:
                raise ValueError("needs a named group (?P<sample>...)")
        return value


class Store(_Section):
    database: Path = Path("state/psdwatch.sqlite")
    busy_timeout: StrictFloat = Field(30.0, gt=0)


class Reports(_Section):
    dir: Path = Path("state/reports")
    interval: StrictFloat = Field(5.0, ge=0.5)
    page_images: StrictInt = Field(500, ge=10)


class Models(_Section):
    dir: Path = Path("models")
    starter: StrictBool = True


class Annotations(_Section):
    dir: Path = Path("annotations")
    proposals_dir: Path = Path("state/proposals")
    propose: StrictBool = False
    max_proposals: StrictInt = Field(500, ge=0)


class Train(_Section):
    enabled: StrictBool = True
    schedule: StrictStr = "0 2 * * *"
    nice: StrictInt = Field(19, ge=0, le=19)
    init: StrictStr = "live"
    synthetic: StrictInt = Field(24, ge=0)
    time_budget: StrictFloat = Field(240.0, ge=0)
    max_epochs: StrictInt = Field(200, gt=0)
    steps: StrictInt = Field(40, gt=0)
    crop: StrictInt = Field(256, ge=64, multiple_of=32)
    batch: StrictInt = Field(4, gt=0)
    lr: StrictFloat = Field(0.01, gt=0)
    finetune_lr: StrictFloat = Field(0.001, gt=0)
    d50_check_images: StrictInt = Field(4, ge=0)
    input: Literal["plain", "flattened"] = "plain"


class Compute(_Section):
    scheduler: StrictStr = ""
    workers: StrictInt = Field(2, ge=1)
    send: Literal["auto", "bytes", "path"] = "auto"
    connect_timeout: StrictFloat = Field(10.0, gt=0)
    read_ahead: StrictBool | Literal["auto"] = "auto"  # "auto": when the network runs on a GPU

    @field_validator("scheduler")
    @classmethod
    def _where(cls, value: str) -> str:
        if value in ("", "local") or re.fullmatch(r"tcp://[^\s:/]+:\d{1,5}", value):
            return value
        raise ValueError('must be "" (this process), "local" (a Dask LocalCluster) '
                         'or "tcp://host:port" (an existing Dask scheduler)')


class Config(_Section):
    watch: Watch = Watch()
    store: Store = Store()
    reports: Reports = Reports()
    models: Models = Models()
    annotations: Annotations = Annotations()
    train: Train = Train()
    scale: Scale = Scale()
    segment: Segment = Segment()
    measure: Measure = Measure()
    psd: Psd = Psd()
    compute: Compute = Compute()
    _source: Path = PrivateAttr(DEFAULT_CONFIG)

    @property
    def source(self) -> Path:
        """The file this configuration was read from (the embedded config.toml when none)."""
        return self._source

    def sections(self) -> dict[str, dict]:
        """The sections as plain values, in the schema's order (what `psdwatch config` prints)."""
        return self.model_dump()


def _read(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"config file {path} is not valid TOML: {error}") from None


def _resolve_paths(config: dict, base: Path) -> dict:
    """Every Path-typed key made absolute against `base` (the file's folder)."""
    for section, values in config.items():
        fields = Config.model_fields.get(section)
        if fields is None or not isinstance(values, dict):
            continue
        for key, value in values.items():
            spec = fields.annotation.model_fields.get(key)
            if spec is not None and spec.annotation is Path and isinstance(value, (str, Path)):
                values[key] = (base / Path(value).expanduser()).resolve()
    return config


def one_line(error: ValidationError, path: Path) -> str:
    """The first problem of a validation, as `config file F: [section] key: what is wrong`."""
    first = error.errors()[0]
    loc = [str(part) for part in first["loc"]]
    where = f"[{loc[0]}] {'.'.join(loc[1:])}" if len(loc) > 1 else f"[{loc[0]}]" if loc else "(top level)"
    what = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
    if first["type"] == "extra_forbidden" and len(loc) == 1:
        what = "unknown section"
    if first["type"].startswith(("literal_error", "int_", "float_", "bool_", "string_", "greater",
                                 "less", "multiple", "value_error")) and "input" in first:
        what += f" (got {first['input']!r})"
    more = len(error.errors()) - 1
    return f"config file {path}: {where}: {what}" + (f" (and {more} more)" if more else "")


def _default_values() -> dict:
    return _resolve_paths(Config().model_dump(), defaults_home())


def defaults() -> Config:
    """The schema's defaults, paths resolved against defaults_home() (the project
    folder of a checkout)."""
    return Config.model_validate(_default_values())


def load_config(path: str | Path | None = None) -> Config:
    """The effective configuration, typed, with absolute Paths.
    Raises ConfigError (one line) for anything the schema refuses."""
    config = _default_values()
    source = DEFAULT_CONFIG
    if path is not None:
        source = Path(path).resolve()
        user = _resolve_paths(_read(source), source.parent)
        for section, values in user.items():
            if not isinstance(values, dict):
                raise ConfigError(f"config file {source}: top-level key {section!r} must be a [section]")
            config.setdefault(section, {}).update(values)
    try:
        validated = Config.model_validate(config)
    except ValidationError as error:
        raise ConfigError(one_line(error, source)) from None
    validated._source = source
    return validated


def settings_from_config(config: Config) -> Settings:
    """The analysis the configuration asks for (pipeline Settings from its science sections)."""
    return Settings.from_sections(config.scale, config.segment, config.measure, config.psd)


def runtime_options(config: Config, threads: int | None = None) -> RuntimeOptions:
    """How the network runs here, from [segment] (threads: a Dask worker's share of the CPUs)."""
    return RuntimeOptions.from_section(config.segment, threads)


def to_toml(config: Config) -> str:
    """The validated configuration as TOML; unset optional keys as comments."""
    lines = [f"# effective configuration; file: {config.source}",
             f"# keys it leaves out: {DEFAULT_CONFIG}, relative paths there under {defaults_home()}"]
    for section, values in config.sections().items():
        lines.append(f"\n[{section}]")
        for key, value in values.items():
            if value is None:
                lines.append(f"# {key} = (not set)")
            elif isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            elif isinstance(value, (int, float)):
                lines.append(f"{key} = {value!r}")
            elif isinstance(value, (list, tuple)):
                lines.append(f"{key} = {json.dumps([str(v) for v in value], ensure_ascii=False)}")
            else:
                lines.append(f"{key} = {json.dumps(str(value), ensure_ascii=False)}")
    return "\n".join(lines) + "\n"
