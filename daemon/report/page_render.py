"""What every report page shares: the templates, the words for each flag, times in
the lab's zone, and small formatting helpers (report.py draws the index, sample_page
a sample's page; both render through here)."""

from __future__ import annotations

import json
import os
import re
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import jinja2

from ...pipeline import __version__ as SOFTWARE_VERSION
from .plots import format_number

# templates/ sits beside daemon/ at the top of the project (DESIGN's layout);
# PSDWATCH_TEMPLATES points elsewhere, e.g. for an installed wheel.
TEMPLATES_DIR = Path(__file__).resolve().parents[2] / "templates"

# Flags of an image, what they mean for a person, and how bad they are.
# "bad": the sizes of that image are not in the nm PSD; "warn": they are, but
# questionable; "info": worth knowing. Unknown flags are shown as they are.
FLAG_TEXT: dict[str, tuple[str, str]] = {
    "scale_unknown": ("bad", "no scale: sizes in px, kept out of the nm PSD"),
    "scale_disputed": ("warn", "scale disputed: file calibration and scale bar disagree"),
    "scale_from_config": ("warn", "scale assumed from the configured fallback, not read from the image"),
    "calibration_from_tiff_resolution": ("warn", "scale from the TIFF resolution tag (plausible, not certain)"),
    "titan_xml_unit_assumed": ("warn", "pixel size unit assumed (not written in the file)"),
    "non_square_pixels": ("warn", "non-square pixels: the mean pixel size was used"),
    "mixed_units": ("warn", "x and y calibrated in different units"),
    "scale_bar_unsure": ("info", "scale bar not read with confidence"),
    # Expected per image (the sample pools them); the sample-level warning is the one that matters.
    "few_particles": ("plain", "few particles in this image"),
    "no_particles": ("warn", "no particles found"),
    "segmentation_unsure": ("warn", "segmentation unsure: bright compact blobs in the frame were not segmented"),
    "large_exclusion": ("warn", "a large part of the frame was kept out of segmentation (scale bar region)"),
    "bright_field": ("info", "bright-field image: not measured (psdwatch measures HAADF)"),
    "lossy_jpeg": ("info", "JPEG file: compression artefacts"),
    "calibration_not_a_length": ("info", "file calibration is not a length (ignored)"),
    "calibration_invalid": ("info", "file calibration invalid (ignored)"),
    "calibration_metadata_unreadable": ("info", "calibration metadata unreadable"),
    "tiff_resolution_ignored": ("info", "implausible TIFF resolution ignored"),
    "titan_xml_unparsable": ("info", "FEI/Titan metadata unreadable"),
    "titan_xml_unitless_pixel_size": ("info", "FEI/Titan pixel size without unit (ignored)"),
    "databar_detected": ("info", "databar below the image cut off"),
    "rgb_converted": ("info", "colour file converted to grey"),
    "alpha_dropped": ("info", "alpha channel dropped"),
    "inverted_miniswhite": ("info", "inverted (MINISWHITE) TIFF"),
    "multipage_picked_raw": ("info", "multi-page file: the raw page was used"),
    "non_finite_values": ("info", "image contains non-finite values"),
}
# In the nm PSD, but a person must know the sizes may be off.
QUESTIONABLE_SCALE = frozenset(f for f, (level, _) in FLAG_TEXT.items()
                               if level == "warn" and f not in ("no_particles", "segmentation_unsure",
                                                                "large_exclusion"))

# --------------------------------------------------------------------------- templates

def templates_dir() -> Path:
    """The templates folder: $PSDWATCH_TEMPLATES, else templates/ beside daemon/."""
    return Path(os.environ.get("PSDWATCH_TEMPLATES") or TEMPLATES_DIR)


@lru_cache(maxsize=4)
def _environment(folder: str) -> jinja2.Environment:
    if not Path(folder, "sample.html").is_file():
        raise FileNotFoundError(f"report templates not found in {folder} "
                                "(set PSDWATCH_TEMPLATES to the templates/ folder)")
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(folder), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = format_number
    return env


def render(template: str, **context) -> str:
    return _environment(str(templates_dir())).get_template(template).render(
        software_version=SOFTWARE_VERSION, **context)


# --------------------------------------------------------------------------- helpers

def _natural_key(text: str) -> list:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", text)]


def _json(text: str | None, default):
    try:
        return json.loads(text) if text else default
    except (TypeError, ValueError):
        return default


def _local_time(iso: str | None) -> str:
    """Stored times are UTC ISO 8601; people read the lab's local time."""
    if not iso:
        return "\u2014"
    try:
        t = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if t.tzinfo is None:
        t = t.replace(tzinfo=timezone.utc)
    return t.astimezone().strftime("%Y-%m-%d %H:%M")


def _now_context() -> dict:
    """When the page was made, and the local zone its times are in."""
    now_local = datetime.now().astimezone()
    offset = now_local.strftime("%z")
    zone = f"UTC{offset[:3]}:{offset[3:]}"
    name = now_local.tzname() or ""
    return {"generated": now_local.strftime("%Y-%m-%d %H:%M"),
            "tz": zone if name in ("", "UTC") or name.startswith(("+", "-")) else f"{name}, {zone}"}


def _strip(path: str, prefix: str) -> str:
    return path[len(prefix):] if path.startswith(prefix) else path


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _flag_items(flags: list[str], details: dict) -> list[dict]:
    items = []
    for flag in flags:
        level, text = FLAG_TEXT.get(flag, ("info", flag.replace("_", " ")))
        if flag == "scale_disputed" and details.get("disagreement_pct") is not None:
            text += f" by {details['disagreement_pct']:g} %"
        items.append({"flag": flag, "level": level, "text": text})
    return items
