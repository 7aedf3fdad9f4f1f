"""Build hook (pyproject's [tool.setuptools.cmdclass]): what of models/ a wheel carries.

The package data globs of pyproject.toml take every model in models/; a wheel
needs only the one that serves, the one models/LIVE names (with its card and
int8 ranges): the starter that a fresh install measures with, whatever its
name. Other models a lab trained in its checkout, candidates that were not
promoted and the test-set record stay out (each model is ~50 MB). Loaded by
setuptools from this file, at build time only: it imports nothing of psdwatch.
"""

from __future__ import annotations

from pathlib import Path

from setuptools.command.build_py import build_py

MODEL_FILES = (".safetensors", ".json", ".int8-ranges")


def live_model_files(models_dir: Path) -> set[str]:
    """File names of models_dir that ship: LIVE and the files of the model it names.
    A LIVE naming weights that are not there stops the build (a wheel without its
    model would run the classical engine everywhere it is installed)."""
    live = models_dir / "LIVE"
    if not live.is_file():
        return set()
    name = live.read_text().strip()
    if not (models_dir / f"{name}.safetensors").is_file():
        raise FileNotFoundError(f"{live} names {name!r}, but {models_dir / (name + '.safetensors')} is missing")
    return {"LIVE", *(f"{name}{suffix}" for suffix in MODEL_FILES)}


class BuildPy(build_py):
    """setuptools' build_py, with models/ narrowed to the live model."""

    def find_data_files(self, package: str, src_dir: str) -> list[str]:
        files = super().find_data_files(package, src_dir)
        if package != "psdwatch":
            return files
        models_dir = Path(src_dir) / "models"
        keep = live_model_files(models_dir)
        return [f for f in files if Path(f).parent.resolve() != models_dir.resolve() or Path(f).name in keep]
