"""The one particle schema: the store's `particles` table, the JSON of `psdwatch
process` and the report's CSV are all derived from it. Apart from measure.py so
that reading the store (`psdwatch status`) does not import the image libraries."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    """One measure of a particle: its name everywhere (store column, JSON key,
    CSV source), its unit, its type, and what it means."""
    name: str
    unit: str
    type: type
    doc: str
    decimals: int = 4   # in the JSON of `process`


# The one particle schema: the store's `particles` table, the JSON of
# `psdwatch process` and the report's CSV are all derived from it.
PARTICLE_SCHEMA: tuple[Column, ...] = (
    Column("id", "", int, "particle number within its image, 1..n"),
    Column("x", "px", float, "centroid, column", 2),
    Column("y", "px", float, "centroid, row", 2),
    Column("area_px", "px^2", float, "pixel area, holes filled"),
    Column("perimeter_px", "px", float, "perimeter (scikit-image regionprops)"),
    Column("ecd_px", "px", float, "equivalent circular diameter sqrt(4 A / pi)"),
    Column("feret_max_px", "px", float, "largest caliper width of the pixel outline"),
    Column("feret_min_px", "px", float, "smallest caliper width of the pixel outline"),
    Column("area_nm2", "nm^2", float, "area; null without a scale"),
    Column("perimeter_nm", "nm", float, "perimeter; null without a scale"),
    Column("ecd_nm", "nm", float, "equivalent circular diameter; null without a scale"),
    Column("feret_max_nm", "nm", float, "largest caliper width; null without a scale"),
    Column("feret_min_nm", "nm", float, "smallest caliper width; null without a scale"),
    Column("circularity", "", float, "4 pi A / P^2, at most 1"),
    Column("solidity", "", float, "area over convex hull area, at most 1"),
    Column("mean_intensity", "", float, "mean raw grey value inside the particle"),
    Column("edge", "", str, "where this particle's edge lies: 'profile' (its projected thickness "
           "meets the support, fitted to its intensity profile) or 'mask' (the segmentation's edge)"),
)
PARTICLE_NAMES = tuple(c.name for c in PARTICLE_SCHEMA)
