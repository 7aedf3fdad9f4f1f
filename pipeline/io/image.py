"""Read microscope images and their pixel calibration.

Every supported file yields one 2-D float32 array of raw detector values plus a calibration
in nm per pixel, or None when the file holds none that can be trusted: a wrong scale is
worse than none, since every particle size would be silently wrong. Anything that cannot
become exactly one image raises UnreadableImage with a one-line reason, so the watcher can
log it and move on.
"""
from __future__ import annotations

import hashlib
import importlib
import os
import re
from dataclasses import dataclass, field

import numpy as np

from .calibration import Calibration, calibration_from, tiff_calibration


class UnreadableImage(ValueError):
    """The file cannot yield one 2-D image; str(exc) is a one-line human reason."""


@dataclass
class LoadedImage:
    """One image ready for analysis. meta is small and JSON-friendly except 'databar'."""

    data: np.ndarray  # 2-D float32 raw values of the image area (databars are cropped off)
    calibration: Calibration | None
    exclude: np.ndarray | None = None  # bool, True = not sample; unused: bars are cropped
    flags: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    colour: np.ndarray | None = None  # the file's RGB where pixels have colour (colour_of), else None


_RSCIIO_EXT = {".emd": "emd", ".emi": "tia", ".ser": "tia", ".dm3": "digitalmicrograph",
               ".dm4": "digitalmicrograph"}
_SUPPORTED = {".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp", *_RSCIIO_EXT}
_MAGIC = {b"II*\x00": "tiff", b"MM\x00*": "tiff", b"II+\x00": "tiff", b"MM\x00+": "tiff",
          b"\x89PNG": "png", b"\xff\xd8\xff": "jpeg", b"BM": "bmp"}


def _to_grey(arr: np.ndarray, flags: list[str], bgr: bool = False) -> np.ndarray:
    """Collapse colour to grey: RGB(A) files are exports of the data, not the data."""
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        rgb = arr[..., 2::-1] if bgr else arr[..., :3]
        flags.append("rgb_converted")
        if (rgb[..., :1] == rgb).all():
            return rgb[..., 0]  # grey saved as RGB: keep the exact values
        return rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)  # Rec. 601
    if arr.ndim == 3 and arr.shape[-1] == 2:
        flags.append("alpha_dropped")
        return arr[..., 0]
    if arr.ndim != 2:
        raise UnreadableImage(f"3-D stack of {arr.shape[0]} frames: cannot pick one image")
    return arr


def colour_of(arr: np.ndarray, bgr: bool = False) -> np.ndarray | None:
    """The RGB (a view) of an RGB(A) file in which some pixels have colour, else None.

    A figure's scale bar or label drawn in colour on a grey micrograph may have about
    the grey of the image around it once colour is collapsed (a green label, Rec. 601
    grey 129, on mid-grey), while one of the channels shows it plainly: the scale
    reader looks there (analyse.read_scale_bar).  Grey saved as RGB, and RGB whose
    channels never differ by more than 15 % of its range, have none."""
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4):
        return None
    rgb = arr[..., 2::-1] if bgr else arr[..., :3]
    spread = rgb.max(axis=-1) - rgb.min(axis=-1)  # in the file's own dtype: max >= min
    return rgb if int((spread > 0.15 * max(float(rgb.max()), 1.0)).sum()) >= 16 else None


def _looks_like_text(head: bytes) -> bool:
    """Binary image formats all have NUL bytes or control codes in their first 4 KiB."""
    s = head.decode("utf-8", errors="replace")
    good = sum((c.isprintable() or c in "\r\n\t") and c != "\ufffd" for c in s)
    return b"\x00" not in head and good >= 0.95 * len(s)


def load_image(path: str | os.PathLike) -> LoadedImage:
    """Read one microscope image and its calibration, or raise UnreadableImage.

    Raster formats are routed by content (a PNG saved as .tif still reads), vendor formats
    by extension; unknown extensions are refused so that partial/temporary files are skipped.
    """
    p, kind = os.fspath(path), None
    ext = os.path.splitext(p)[1].lower()
    try:  # the file may vanish or change under a watcher at any point: wrap everything
        if not os.path.isfile(p):
            raise UnreadableImage("not a regular file" if os.path.exists(p) else "file not found")
        size = os.path.getsize(p)
        if size == 0:
            raise UnreadableImage("empty file (0 bytes)")
        if ext not in _SUPPORTED:
            raise UnreadableImage(f"unsupported format {ext or '(no extension)'}")
        with open(p, "rb") as fh:
            head = fh.read(4096)
        if _looks_like_text(head):
            raise UnreadableImage("not an image: file is text")
        kind = next((k for m, k in _MAGIC.items() if head.startswith(m)), _RSCIIO_EXT.get(ext))
        if kind is None:
            raise UnreadableImage(f"not a valid {ext[1:].upper()} file: unrecognised header bytes")
        if kind == "tiff":
            img = _load_tiff(p, size)
        elif kind in ("png", "jpeg", "bmp"):
            img = _load_cv2(p, kind)
        else:
            img = _load_rsciio(p, kind)
    except UnreadableImage:
        raise
    except Exception as exc:  # noqa: BLE001 - every reader failure must become one type
        what = "truncated or corrupt TIFF" if kind == "tiff" else f"unreadable {kind or 'image'} file"
        detail = " ".join(str(exc).split())[:160]  # one line, bounded length
        raise UnreadableImage(f"{what}: {type(exc).__name__}: {detail}") from None
    if img.data.ndim != 2 or 0 in img.data.shape:
        raise UnreadableImage(f"not a 2-D image: shape {img.data.shape}")
    _check_size(img.data.shape)
    img.data = np.ascontiguousarray(img.data, dtype=np.float32)
    if not np.isfinite(img.data).all():
        img.flags.append("non_finite_values")
    return img


# Larger frames than any STEM writes (16k x 16k) are refused before their pixels are
# read: a mosaic or a mislabelled file must not take the service's memory.
MAX_PIXELS = 16384 * 16384


# A decompression bomb declares far more pixels than its bytes can honestly hold: a
# real frame, even of vacuum, compresses tens of times (detector noise), not hundreds. Checked from
# the header, before a decoder allocates anything.
MAX_EXPANSION = 250
EXPANSION_CHECKED_ABOVE = 4096 * 4096  # small frames may be blank test patterns


def _check_size(shape: tuple[int, ...], file_bytes: int | None = None, bytes_per_pixel: int = 1) -> None:
    pixels = int(np.prod(shape[:2])) if len(shape) >= 2 else 0
    if pixels > MAX_PIXELS:
        raise UnreadableImage(f"image too large: {' x '.join(map(str, shape))} pixels, "
                              f"more than the {MAX_PIXELS // 1_000_000} megapixels psdwatch measures")
    decoded = int(np.prod(shape)) * bytes_per_pixel
    if file_bytes and pixels > EXPANSION_CHECKED_ABOVE and decoded > MAX_EXPANSION * file_bytes:
        raise UnreadableImage(f"decompression bomb: {' x '.join(map(str, shape))} declared in "
                              f"{file_bytes} bytes ({decoded // file_bytes}x); not decoded")


# ---------------------------------------------------------------------------- PNG / JPEG
def _load_cv2(path: str, kind: str) -> LoadedImage:
    """PNG/JPEG/BMP: no calibration is read, their pHYs/JFIF densities are display dpi.
    The size comes from the header (Pillow reads only that) and is checked before
    OpenCV decodes a single pixel."""
    import cv2
    from PIL import Image

    try:
        with Image.open(path) as header:
            width, height = header.size
            bands, bits = len(header.getbands()), 16 if header.mode.startswith("I;16") else 8
    except Image.DecompressionBombError as error:  # Pillow's own guard, far above MAX_PIXELS
        pixels = re.search(r"\((\d+) pixels\)", str(error))
        raise UnreadableImage(f"image too large: its header declares {pixels.group(1) if pixels else 'too many'} "
                              "pixels (a decompression bomb); not decoded") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise UnreadableImage(f"truncated or corrupt {kind.upper()}: unreadable header "
                              f"({type(error).__name__})") from None
    _check_size((height, width, bands), os.path.getsize(path), bits // 8)

    arr = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)  # unicode-safe
    if arr is None:
        raise UnreadableImage(f"truncated or corrupt {kind.upper()}: decoder returned nothing")
    flags = ["lossy_jpeg"] if kind == "jpeg" else []
    meta = {"format": kind, "dtype": str(arr.dtype), "shape": list(arr.shape)}
    return LoadedImage(_to_grey(arr, flags, bgr=True), None, None, flags, meta, colour_of(arr, bgr=True))


# ---------------------------------------------------------------------------- rosettasciio
def preload_readers() -> None:
    """Import the microscope-format readers now (about 80 MB of code with h5py and dask).

    Why: a long-running service loads them at its first DM, EMD or TIA file anyway;
    loading them at start makes its memory known from the first minute, so that a
    file arriving later, hostile or not, can only add its own bounded data."""
    for kind in sorted(set(_RSCIIO_EXT.values())):
        try:
            importlib.import_module(f"rsciio.{kind}")
        except ImportError:  # a reader's optional dependency missing: that format fails alone, later
            pass


def _load_rsciio(path: str, kind: str) -> LoadedImage:
    """Velox EMD, TIA EMI/SER, DigitalMicrograph DM3/DM4: the HAADF (else first) 2-D image."""
    reader = importlib.import_module(f"rsciio.{kind}").file_reader
    # Lazily: the shapes are known from the header, the pixels read only once checked.
    signals = reader(path, select_type="images", lazy=True) if kind == "emd" else reader(path, lazy=True)
    for sig in signals:
        _check_size(tuple(sig["data"].shape), os.path.getsize(path), sig["data"].dtype.itemsize)
    images, stacks = [], []
    for sig in signals:
        data = np.asarray(sig["data"])
        keep = [i for i, n in enumerate(data.shape) if n > 1]  # drop length-1 axes
        title = str(sig.get("metadata", {}).get("General", {}).get("title") or "")
        if len(keep) == 2:
            axes = [sig["axes"][i] for i in keep] if len(sig["axes"]) == data.ndim else None
            images.append((title, data.reshape([data.shape[i] for i in keep]), axes))
        elif len(keep) == 3:
            stacks.append(data.shape[keep[0]])
    if not images:
        if stacks:
            raise UnreadableImage(f"3-D stack of {stacks[0]} frames: cannot pick one image")
        raise UnreadableImage(f"no 2-D image in {kind} file ({len(signals)} non-image signals)")
    title, raw, axes = next((im for im in images if "haadf" in im[0].lower()), images[0])
    flags: list[str] = []
    data = np.stack([raw[c] for c in "RGB"], -1) if raw.dtype.names else raw  # DM RGB struct
    data = _to_grey(data, flags)
    cal = None
    if axes:
        ay, ax = axes
        cal = calibration_from(ax.get("scale", 1.0), ax.get("units"), ay.get("scale", 1.0),
                           ay.get("units"), f"rsciio {kind}", flags)
    meta = {"format": kind, "dtype": str(raw.dtype), "shape": list(raw.shape),
            "signal_title": title, "signals": [im[0] for im in images]}
    return LoadedImage(data, cal, None, flags, meta)


# ---------------------------------------------------------------------------- TIFF
def _pick_page(pages: list, flags: list[str]) -> int:
    """Index of the raw-data page: a page named HAADF, else grey over colour, more bits
    over fewer, bigger over smaller. Equal-ranked pages are a genuine stack (series,
    several detectors) and picking one would be a guess, so that raises."""
    if len(pages) < 2:
        if not pages:
            raise UnreadableImage("truncated or corrupt TIFF: no readable image page")
        return 0
    named = [i for i, pg in enumerate(pages) if "haadf" in str(pg.tags.valueof(285, "")).lower()]
    ranks = [(pg.samplesperpixel == 1 and pg.photometric in (0, 1), pg.bitspersample,
              pg.imagewidth * pg.imagelength) for pg in pages]
    if len(named) != 1 and ranks.count(max(ranks)) > 1:
        raise UnreadableImage(f"3-D stack of {ranks.count(max(ranks))} frames: "
                              "cannot pick one image")
    flags.append("multipage_picked_raw")
    return named[0] if len(named) == 1 else ranks.index(max(ranks))


def _load_tiff(path: str, size: int) -> LoadedImage:
    """Any TIFF; a databar (FEI, Phenom) is cropped off and kept as meta['databar']."""
    import tifffile

    flags: list[str] = []
    with tifffile.TiffFile(path) as tif:
        pages = [pg for pg in tif.pages if not pg.subfiletype & 1]  # skip reduced thumbnails
        idx = _pick_page(pages, flags)
        page = pages[idx]
        end = max((o + n for o, n in zip(page.dataoffsets, page.databytecounts)), default=0)
        if end > size:
            raise UnreadableImage(f"truncated or corrupt TIFF: data ends at byte {end}, "
                                  f"file has {size}")
        _check_size(page.shape, sum(page.databytecounts) or size, page.dtype.itemsize if page.dtype else 1)
        raw = arr = page.asarray()
        if page.photometric == 3 and page.colormap is not None:  # palette -> RGB
            arr = np.moveaxis(page.colormap[:, arr], 0, -1)
        elif page.samplesperpixel > 1 and page.planarconfig == 2:
            arr = np.moveaxis(arr, 0, -1)  # separate colour planes -> samples last
        if arr.ndim > 2 and arr.shape[-1] not in (2, 3, 4):
            arr = np.squeeze(arr)  # (1, y, x) -> (y, x); a real volume raises in _to_grey
        colour = colour_of(arr)
        arr = _to_grey(arr, flags)
        if page.photometric == 0 and arr.dtype.kind in "ui":  # MINISWHITE: bright = high
            arr = np.iinfo(arr.dtype).max - arr
            flags.append("inverted_miniswhite")
        meta = {"format": "tiff", "dtype": str(raw.dtype), "shape": list(raw.shape),
                "page": idx, "n_pages": len(pages), "compression": page.compression.name}
        try:  # broken metadata costs the calibration, not the image
            cal, rows = tiff_calibration(tif, page, path, arr.shape, flags)
        except Exception:  # noqa: BLE001
            flags.append("calibration_metadata_unreadable")
            cal, rows = None, None
        rows = _detect_databar(arr, flags) if rows is None and tif.is_fei else rows
    if rows and 0 < rows < arr.shape[0]:
        meta["databar_rows"] = [int(rows), int(arr.shape[0])]  # [first bar row, end)
        meta["databar"], arr = arr[rows:], arr[:rows]
        colour = None if colour is None else colour[:rows]
    return LoadedImage(arr, cal, None, flags, meta, colour)


def _detect_databar(arr: np.ndarray, flags: list[str]) -> int | None:
    """First databar row of an FEI image without ResolutionY. The bar is framed by a
    uniform bright line (252 of 255 in real Helios files): take the topmost one in the
    bottom 30 % that leaves at least 8 rows of bar below it."""
    h = arr.shape[0]
    line = (np.ptp(arr, axis=1) == 0) & (arr[:, 0] >= 0.9 * arr.max())
    rows = [r for r in range(int(h * 0.7), h - 8) if line[r]]
    if rows:
        flags.append("databar_detected")
    return rows[0] if rows else None


def file_sha256(path: str | os.PathLike) -> str:
    """A file's content hash, read in blocks: the identity of an image (the same
    bytes under two names are one image) and of a model's weights."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
