"""The science's configuration: the [scale], [segment], [measure] and [psd] sections
of config.toml, typed, with their only defaults, and the flat `Settings` one
analysis reads.

The sections are pydantic models (the daemon's configuration schema composes
them with its own sections, daemon/config.py), so a key and its default are
written once, here, where the knob is used. `Settings` takes every default from
them, so `Settings()` is exactly the analysis an unconfigured psdwatch runs.
Light on purpose: the configuration (and every command that only reads it:
status, report, --help) builds these without importing the image and network
libraries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, field_validator

TARGET_DIAMETER_PX = 16.0  # the real patches' particles, which the starter learnt from (d50 13-16 px)

Fraction = StrictFloat


class Section(BaseModel):
    """One [section] of config.toml: an unknown key or a wrong type is refused, never ignored."""
    model_config = ConfigDict(extra="forbid", validate_default=True)


class Scale(Section):
    nm_per_px: StrictFloat | None = Field(None, gt=0)
    disagreement_pct: StrictFloat = Field(2.0, gt=0)
    ocr: StrictBool = True


class Segment(Section):
    engine: Literal["auto", "unet", "classical"] = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    tile: StrictInt = Field(512, ge=64, multiple_of=32)
    overlap: StrictInt = Field(64, ge=0)
    precision: Literal["auto", "fp32", "bf16", "int8"] = "auto"
    runtime: Literal["auto", "onnxruntime", "torch"] = "auto"
    threads: StrictInt = Field(0, ge=0)
    threshold: Literal["auto"] | Fraction = "auto"
    size_aware: StrictBool = True  # shrink frames of large particles (segment/size.py)
    target_diameter_px: StrictFloat = Field(TARGET_DIAMETER_PX, gt=0)
    # More kept out of segmentation than a band's worth is flagged.
    max_excluded_fraction: Fraction = Field(0.15, gt=0, le=1)
    skip_bright_field: StrictBool = True

    @field_validator("threshold")
    @classmethod
    def _probability(cls, value):
        if value != "auto" and not 0 < value < 1:
            raise ValueError("must be \"auto\" or a probability between 0 and 1")
        return value


class Measure(Section):
    min_diameter_nm: StrictFloat = Field(0.5, ge=0)
    min_area_px: StrictInt = Field(6, ge=1)
    watershed: StrictBool = False
    # Cut touching particles apart where they meet at a waist narrower than
    # (1 - neck_split) of the smaller one's inscribed radius (measure/necks.py); 0 = off.
    neck_split: Fraction = Field(0.3, ge=0, lt=1)
    exclude_border: StrictBool = True
    # "profile": fitted to each particle's profile; "mask": as segmented.
    edge: Literal["profile", "mask"] = "profile"


class Psd(Section):
    min_particles: StrictInt = Field(100, ge=1)
    bootstrap: StrictInt = Field(1000, ge=0)


def _default(section: type[Section], key: str):
    return section.model_fields[key].default


@dataclass
class Settings:
    """Every knob of one analysis, flat; the defaults are the sections' (above)."""
    engine: str = _default(Segment, "engine")
    tile: int = _default(Segment, "tile")
    overlap: int = _default(Segment, "overlap")
    precision: str = _default(Segment, "precision")
    runtime: str = _default(Segment, "runtime")
    threshold: float | None = None       # None ([segment] threshold = "auto"): the model's own (its card), else 0.5
    fallback_nm_per_px: float | None = _default(Scale, "nm_per_px")
    disagreement_pct: float = _default(Scale, "disagreement_pct")
    ocr: bool = _default(Scale, "ocr")
    min_diameter_nm: float = _default(Measure, "min_diameter_nm")
    min_area_px: int = _default(Measure, "min_area_px")
    watershed: bool = _default(Measure, "watershed")
    neck_split: float = _default(Measure, "neck_split")
    exclude_border: bool = _default(Measure, "exclude_border")
    min_particles: int = _default(Psd, "min_particles")
    bootstrap: int = _default(Psd, "bootstrap")
    size_aware: bool = _default(Segment, "size_aware")
    target_diameter_px: float = _default(Segment, "target_diameter_px")
    max_excluded_fraction: float = _default(Segment, "max_excluded_fraction")
    skip_bright_field: bool = _default(Segment, "skip_bright_field")
    edge: str = _default(Measure, "edge")

    @classmethod
    def from_sections(cls, scale: Scale, segment: Segment, measure: Measure, psd: Psd) -> "Settings":
        """The analysis the configured sections ask for: the one mapping of section keys to knobs."""
        return cls(
            engine=segment.engine, tile=segment.tile, overlap=segment.overlap, precision=segment.precision,
            runtime=segment.runtime, threshold=None if segment.threshold == "auto" else float(segment.threshold),
            fallback_nm_per_px=scale.nm_per_px, disagreement_pct=scale.disagreement_pct, ocr=scale.ocr,
            min_diameter_nm=measure.min_diameter_nm, min_area_px=measure.min_area_px,
            watershed=measure.watershed, neck_split=measure.neck_split, exclude_border=measure.exclude_border, edge=measure.edge,
            min_particles=psd.min_particles, bootstrap=psd.bootstrap,
            size_aware=segment.size_aware, target_diameter_px=segment.target_diameter_px,
            max_excluded_fraction=segment.max_excluded_fraction, skip_bright_field=segment.skip_bright_field,
        )


@dataclass(frozen=True)
class RuntimeOptions:
    """How a network runs on this machine ([segment] device, precision, runtime,
    threads): what runtime.prepare takes. Frozen, so a Dask worker can key the
    models it holds by it."""
    device: str = _default(Segment, "device")
    precision: str = _default(Segment, "precision")
    runtime: str = _default(Segment, "runtime")
    threads: int = _default(Segment, "threads")

    @classmethod
    def from_section(cls, segment: Segment, threads: int | None = None) -> "RuntimeOptions":
        """The [segment] section's runtime keys; `threads` overrides its threads
        (a Dask LocalCluster shares the CPUs among its workers)."""
        return cls(segment.device, segment.precision, segment.runtime,
                   segment.threads if threads is None else threads)
