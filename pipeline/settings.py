"""Every knob of the method in one light dataclass, so that the configuration
(and every command that only reads it: status, report, --help) can build the
analysis settings without importing the image and network libraries."""

from __future__ import annotations

from dataclasses import dataclass

TARGET_DIAMETER_PX = 16.0  # the real patches' particles, which the starter learnt from (d50 13-16 px)


@dataclass
class Settings:
    """The defaults are the configuration schema's (psdwatch.daemon.config)."""
    engine: str = "auto"
    tile: int = 512
    overlap: int = 64
    precision: str = "auto"
    runtime: str = "auto"
    threshold: float | None = None       # None: the model's own (its card), else 0.5
    fallback_nm_per_px: float | None = None
    disagreement_pct: float = 2.0
    ocr: bool = True
    min_diameter_nm: float = 0.5
    min_area_px: int = 6
    watershed: bool = False
    exclude_border: bool = True
    min_particles: int = 100
    bootstrap: int = 1000
    size_aware: bool = True              # shrink frames of large particles (pipeline.size)
    target_diameter_px: float = TARGET_DIAMETER_PX
    max_excluded_fraction: float = 0.15  # more kept out of segmentation than a band's worth is flagged
    skip_bright_field: bool = True
    edge: str = "profile"                # "profile": fitted to each particle's profile; "mask": as segmented
