"""The configuration schema: config.toml documents exactly its defaults, and a typo,
a wrong type or a bad value stops every command with one line naming the key."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from psdwatch.daemon.config import DEFAULT_CONFIG, Config, ConfigError, defaults, load_config

REPO = Path(__file__).resolve().parent.parent


def test_config_toml_holds_exactly_the_schema_defaults():
    documented = tomllib.loads(DEFAULT_CONFIG.read_text())
    schema = Config().model_dump(mode="json")
    commented = set(re.findall(r"^# (\w+) = ", DEFAULT_CONFIG.read_text(), flags=re.M))
    for section, keys in schema.items():
        assert section in documented, f"[{section}] is not documented in config.toml"
        for key, value in keys.items():
            if value is None:  # optional keys are documented as a commented example
                assert key in commented, f"[{section}] {key} has no commented example in config.toml"
                continue
            assert key in documented[section], f"[{section}] {key} is missing from config.toml"
            assert documented[section][key] == value, (section, key, documented[section][key], value)
    for section, keys in documented.items():
        assert section in schema, f"config.toml has a section [{section}] the schema lacks"
        assert set(keys) <= set(schema[section]), (section, set(keys) - set(schema[section]))


def test_the_embedded_file_validates_and_paths_are_absolute():
    config = load_config(DEFAULT_CONFIG)
    assert config.sections() == defaults().sections() and config.source == DEFAULT_CONFIG
    assert config.watch.root == (REPO / "share").resolve()


@pytest.mark.parametrize("text, words", [
    ('[segment]\nengin = "unet"\n', ("[segment] engin", "unknown key")),
    ('[segment]\ntile = "big"\n', ("[segment] tile", "integer")),
    ('[segment]\ntile = 500\n', ("[segment] tile", "multiple of 32")),
    ('[segment]\nengine = "fast"\n', ("[segment] engine", "'fast'")),
    ('[watch]\npolling = "yes"\n', ("[watch] polling",)),
    ('[psd]\nbootstrap = -1\n', ("[psd] bootstrap", "greater than or equal to 0")),
    ('[scael]\nnm_per_px = 0.2\n', ("[scael]", "unknown section")),
    ('[watch]\nsample_pattern = "^(x)"\n', ("[watch] sample_pattern", "(?P<sample>")),
])
def test_a_bad_key_is_one_line_naming_file_section_and_key(tmp_path, text, words):
    path = tmp_path / "my.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert "\n" not in message and str(path) in message
    for word in words:
        assert word in message, message


@pytest.mark.slow
@pytest.mark.parametrize("text, key", [('[segment]\nengin = "unet"\n', "engin"),
                                        ('[measure]\nmin_area_px = 2.5\n', "min_area_px")])
def test_process_and_status_stop_on_a_bad_config(tmp_path, patches, text, key):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    for args in (["process", str(patches[0])], ["status"], ["report"]):
        done = subprocess.run([sys.executable, "-m", "psdwatch.daemon.cli", *args, "--config", str(path)],
                              capture_output=True, text=True, timeout=120)
        assert done.returncode != 0
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and key in lines[0] and str(path) in lines[0], done.stderr


def test_psdwatch_config_prints_the_effective_configuration(tmp_path):
    path = tmp_path / "my.toml"
    path.write_text('[segment]\nengine = "classical"\n[psd]\nmin_particles = 30\n')
    done = subprocess.run([sys.executable, "-m", "psdwatch.daemon.cli", "config", "--config", str(path)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = tomllib.loads(done.stdout)
    assert printed["segment"]["engine"] == "classical" and printed["psd"]["min_particles"] == 30
    assert printed["watch"]["root"] == str((REPO / "share").resolve())  # left out: the embedded default
    assert printed["segment"]["tile"] == 512


def test_the_analysis_defaults_are_the_schema_s():
    """pipeline Settings take every default from the sections the schema composes:
    an unconfigured analysis is the embedded config.toml's."""
    from psdwatch.daemon.config import runtime_options, settings_from_config
    from psdwatch.pipeline.settings import RuntimeOptions, Settings

    assert settings_from_config(load_config(DEFAULT_CONFIG)) == Settings()
    assert runtime_options(defaults()) == RuntimeOptions()
    assert runtime_options(defaults(), threads=3).threads == 3


def test_training_options_come_from_train_with_the_command_line_over_them(tmp_path):
    from psdwatch.daemon.models.promotion import train_options

    path = tmp_path / "my.toml"
    path.write_text('[train]\ncrop = 128\ntime_budget = 2.0\n[segment]\nprecision = "fp32"\n')
    config = load_config(path)
    options = train_options(config, crop=None, batch=8)
    assert (options.crop, options.batch, options.time_budget_s, options.precision) == (128, 8, 120.0, "fp32")
    assert options.lr == config.train.lr and train_options(config, init="live").lr == config.train.finetune_lr
    assert train_options(config, lr=0.5, input="flattened").lr == 0.5
