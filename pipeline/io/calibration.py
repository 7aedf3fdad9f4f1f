"""A file's own pixel calibration: which metadata to trust, in nm per pixel.

Vendors write the pixel size in many places (FEI/Thermo INI, the Titan/Phenom XML tag,
ImageJ's unit, Zeiss/Gatan/JEOL private tags through rosettasciio, plain TIFF
resolution). A wrong scale is worse than none, since every particle size would be
silently wrong: each reader here accepts only values that cannot be misread and flags
what it assumed.
"""
from __future__ import annotations

import math
import re
import unicodedata
import xml.etree.ElementTree as ET
from dataclasses import dataclass

@dataclass
class Calibration:
    """Pixel size, kept per axis so that non-square pixels stay visible."""

    nm_per_px: float  # the value to use: mean of x and y
    nm_per_px_x: float
    nm_per_px_y: float
    source: str  # where it came from, e.g. "fei_metadata Scan.PixelWidth"
    text: str  # raw value and unit as found, for audit trails, e.g. "3.3724e-06 m"

# nm per unit. Exact names only, so that '1/nm' (diffraction) is never read as 'nm'.
_NM_PER_UNIT = {"m": 1e9, "cm": 1e7, "mm": 1e6, "µm": 1e3, "μm": 1e3, "um": 1e3, "micron": 1e3,
                "microns": 1e3, "nm": 1.0, "å": 0.1, "Å": 0.1, "a": 0.1, "angstrom": 0.1, "pm": 1e-3}

_NO_UNIT = {"", "none", "<undefined>", "px", "pixel", "pixels"}  # uncalibrated, not an error

def unit_nm(unit: object) -> float | None:
    """nm per unit, or None for anything that is not a plain length (px, 1/nm, inch...)."""
    u = unicodedata.normalize("NFKC", str(unit).strip())  # micro sign, Angstrom sign
    return _NM_PER_UNIT.get(u, _NM_PER_UNIT.get(u.lower()))

def _num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and x > 0

def calibration_from(vx, ux, vy, uy, source: str, flags: list[str], text: str | None = None
                 ) -> Calibration | None:
    """Calibration from raw (value, unit) pairs; None (flagged) unless both are lengths."""
    fx, fy = unit_nm(ux), unit_nm(uy)
    if fx is None and str(ux or "").strip().lower() in _NO_UNIT:
        return None
    try:
        x, y = float(vx) * fx, float(vy) * fy  # TypeError when a unit is unknown
    except (TypeError, ValueError):
        flags.append("calibration_not_a_length")
        return None
    if not (math.isfinite(x) and math.isfinite(y) and x > 0 and y > 0):
        flags.append("calibration_invalid")
        return None
    if fx != fy:  # 'um' and 'µm' are one unit; 'nm' and 'µm' are not
        flags.append("mixed_units")
    if abs(x - y) > 0.01 * (x + y) / 2:
        flags.append("non_square_pixels")
    if text is None:
        text = f"{vx} {ux}" if (vx, ux) == (vy, uy) else f"x {vx} {ux}, y {vy} {uy}"
    return Calibration((x + y) / 2, x, y, source, text)

def tiff_calibration(tif, page, path: str, shape: tuple, flags: list[str]):
    """(Calibration | None, image rows above a databar | None), most specific source first."""
    rows = None
    if tif.is_fei and tif.fei_metadata:
        cal, rows = _fei_ini(tif.fei_metadata, flags)
        if cal:
            return cal, rows
    if page.tags.valueof(34683):
        cal, bar = _titan_xml(page.tags.valueof(34683), flags)
        rows = rows or (shape[0] - bar if bar else None)
        if cal:
            return cal, rows
    xr, yr = page.tags.valueof(282), page.tags.valueof(283) or page.tags.valueof(282)
    if tif.is_imagej and tif.imagej_metadata and xr and xr[0] and yr[0]:
        unit = str(tif.imagej_metadata.get("unit", "")).replace("\\u00B5", "µ")
        if unit_nm(unit):  # ImageJ: XResolution is pixels per unit
            return calibration_from(xr[1] / xr[0], unit, yr[1] / yr[0], unit, "imagej", flags), rows
    # private tags rosettasciio decodes: Zeiss, Gatan DM export, TVIPS, Olympus SIS, JEOL
    if any(c >= 32768 and c not in (34665, 34675, 34682, 34683) for c in page.tags.keys()):
        cal = _rsciio_tiff(path, shape, flags)
        if cal:
            return cal, rows
    return _resolution_cm(page, flags), rows

def _fei_ini(fei: dict, flags: list[str]):
    """FEI/Thermo INI metadata: [Scan] PixelWidth, else the active scan section's, else the
    active beam's HFW (VFW) over [Image] ResolutionX (Y). ResolutionY also gives the
    number of image rows above the databar."""
    image, beam = fei.get("Image") or {}, fei.get("Beam") or {}
    rows = int(image["ResolutionY"]) if _num(image.get("ResolutionY")) else None
    for sec in ("Scan", beam.get("Scan"), "EScan", "IScan"):
        s = (fei.get(sec) or {}) if sec else {}
        if _num(s.get("PixelWidth")):
            pw, ph = s["PixelWidth"], s.get("PixelHeight", s["PixelWidth"])
            return calibration_from(pw, "m", ph, "m", f"fei_metadata {sec}.PixelWidth", flags), rows
    nx = image.get("ResolutionX")
    for sec in (beam.get("Beam"), "EBeam", "IBeam", "IRBeam"):
        s = (fei.get(sec) or {}) if sec else {}
        if _num(s.get("HFW")) and _num(nx):
            px = s["HFW"] / nx
            py = s["VFW"] / rows if _num(s.get("VFW")) and rows else px
            return calibration_from(px, "m", py, "m", f"fei_metadata {sec}.HFW / Image.ResolutionX",
                                flags, f"HFW {s['HFW']} m / {nx} px"), rows
    return None, rows

def _titan_xml(value, flags: list[str]):
    """Parse the XML in tag 34683 (FEI_TITAN), which tifffile names but does not parse.

    Layouts known from public readers: Thermo <Metadata> BinaryResult/PixelSize/X|Y[@unit]
    (pynxtools-em), Titan/TIA PixelSize/X|Y without unit (Bio-Formats reads micrometres),
    Phenom <FeiImage> pixelWidth|pixelHeight[@unit] plus databarHeight (rosettasciio).
    Returns (Calibration | None, databar height in rows | None).
    """
    if isinstance(value, bytes):
        value = value.decode("utf-16" if value[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8",
                             errors="replace")
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", str(value).strip("\x00 \r\n\t\ufeff"))
    try:
        root = ET.fromstring(text)
    except ET.ParseError:
        flags.append("titan_xml_unparsable")
        return None, None
    found: dict = {}  # 'name' and 'parent/name' (lower case, no namespace) -> first element
    for parent in root.iter():
        for el in parent:
            name = el.tag.rsplit("}", 1)[-1].lower()
            if (el.text or "").strip():
                found.setdefault(name, el)
                found.setdefault(parent.tag.rsplit("}", 1)[-1].lower() + "/" + name, el)

    def first(*keys):  # Elements without children are falsy: no `or` chains
        return next((found[k] for k in keys if k in found), None)

    bar = first("databarheight")
    bar = int(float(bar.text)) if bar is not None else None
    ex = first("pixelsize/x", "pixelsize/width", "pixelwidth")
    ey = first("pixelsize/y", "pixelsize/height", "pixelheight", "pixelsize/x", "pixelwidth")
    if ex is None:
        return None, bar
    vx, vy, ux, uy = float(ex.text), float(ey.text), ex.get("unit"), ey.get("unit", ex.get("unit"))
    if ux is None:  # no unit written: accept only values that cannot be misread
        if not (vx < 1e-5 or 1e-4 <= vx <= 10):
            flags.append("titan_xml_unitless_pixel_size")
            return None, bar
        ux = uy = "m" if vx < 1e-5 else "µm"  # 1e-4..10 m per pixel is no TEM scale
        flags.append("titan_xml_unit_assumed")
    return calibration_from(vx, ux, vy, uy, "FEI_TITAN xml", flags), bar

def _rsciio_tiff(path: str, shape: tuple, flags: list[str]) -> Calibration | None:
    """Let rosettasciio's TIFF reader decode vendor tags that are not parsed here."""
    from rsciio.tiff import file_reader

    axes = [a for a in file_reader(path)[0]["axes"] if a.get("size", 1) > 1]
    if tuple(a["size"] for a in axes[-2:]) != tuple(shape) or not unit_nm(axes[-1].get("units")):
        return None
    ay, ax = axes[-2:]
    return calibration_from(ax["scale"], ax["units"], ay["scale"], ay["units"], "rsciio tiff", flags)

def _resolution_cm(page, flags: list[str]) -> Calibration | None:
    """Plain XResolution/YResolution, trusted only in pixels per cm giving 1 pm..1 µm/px.

    Inch resolutions are never a calibration: 72/96/300 dpi are writer defaults. Print
    resolutions written in cm (72 dpi = 28.3 px/cm ... 4800 dpi = 1890 px/cm) all mean
    more than 5 µm per pixel, so a 1 µm/px ceiling (not 100 µm: 300 dpi in cm is 85 µm/px)
    rejects them and keeps every STEM/TEM scale. An accepted value is still flagged.
    """
    xr, yr = page.tags.valueof(282), page.tags.valueof(283) or page.tags.valueof(282)
    if page.tags.valueof(296) != 3 or not (xr and yr and xr[0] and yr[0]):  # 3 = CENTIMETER
        return None
    nx, ny = 1e7 * xr[1] / xr[0], 1e7 * yr[1] / yr[0]
    if not (1e-3 <= nx <= 1e3 and 1e-3 <= ny <= 1e3):
        flags.append("tiff_resolution_ignored")
        return None
    flags.append("calibration_from_tiff_resolution")
    return calibration_from(nx, "nm", ny, "nm", "tiff resolution", flags,
                        f"{xr[0] / xr[1]:g} px/cm x {yr[0] / yr[1]:g} px/cm")
