"""Tests for io.py: real vendor files (read in place, never copied) plus synthetic TIFFs."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from psdwatch.pipeline.io.calibration import unit_nm
from psdwatch.pipeline.io.image import UnreadableImage, load_image
from tests.conftest import DATA

FORMATS = DATA / "formats"
PTAL = DATA / "pt-alumina-haadf"


def close(a: float, b: float, rel: float = 0.002) -> bool:
    """Calibrations must match to 0.2 %."""
    return abs(a - b) <= rel * abs(b)


# --------------------------------------------------------------------------- real files
REAL = [  # file, shape after databar crop, nm/px (from data/README.md), source
    ("FEI-Helios-Ebeam-8bits.tif", (442, 512), 3372.4, "fei_metadata Scan.PixelWidth"),
    ("FEI-Helios-Ebeam-16bits.tif", (442, 512), 3372.4, "fei_metadata Scan.PixelWidth"),
    ("128x128_TEM_acquire-sum1.emi", (128, 128), 21.479, "rsciio tia"),
    ("128x128_TEM_acquire-sum1_1.ser", (128, 128), 21.479, "rsciio tia"),
    # Velox BinaryResult.PixelSize width = height = 3.5992492559614689e-09 m
    ("Test SI 16x16 215 kx.emd", (16, 16), 3.5992492559614689, "rsciio emd"),
    ("JEOL HAADF Image.dm4", (112, 112), 1.2490, "rsciio digitalmicrograph"),
]


@pytest.mark.parametrize("name,shape,nm,source", REAL)
def test_real_vendor_files(name, shape, nm, source):
    img = load_image(FORMATS / name)
    assert img.data.shape == shape and img.data.dtype == np.float32
    assert img.calibration is not None and img.calibration.source == source
    assert close(img.calibration.nm_per_px, nm)
    assert close(img.calibration.nm_per_px_x, img.calibration.nm_per_px_y, 0.01)
    assert img.exclude is None
    assert "non_square_pixels" not in img.flags and "mixed_units" not in img.flags


@pytest.mark.parametrize("bits", [8, 16])
def test_fei_databar_cropped_and_kept(bits):
    img = load_image(FORMATS / f"FEI-Helios-Ebeam-{bits}bits.tif")
    bar = img.meta["databar"]
    assert bar.shape == (29, 512) and img.meta["databar_rows"] == [442, 471]
    assert img.calibration.text == "3.3724e-06 m"
    assert bar[0].min() == bar[0].max() >= 0.9 * bar.max()  # the bar's bright frame line
    with tifffile.TiffFile(FORMATS / f"FEI-Helios-Ebeam-{bits}bits.tif") as tif:
        raw = tif.asarray()
    np.testing.assert_array_equal(img.data, raw[:442].astype(np.float32))  # raw, not rescaled
    np.testing.assert_array_equal(bar, raw[442:])


def test_velox_picks_haadf_among_eds_maps():
    img = load_image(FORMATS / "Test SI 16x16 215 kx.emd")
    assert img.meta["signal_title"] == "HAADF" and len(img.meta["signals"]) > 1
    assert img.meta["dtype"] == "uint16"


def test_dm4_unit_text_kept():
    cal = load_image(FORMATS / "JEOL HAADF Image.dm4").calibration
    assert cal.text.endswith("µm") and cal.text.startswith("0.001249")


def test_pt_alumina_patches():
    stems = [e["stem"] for e in json.loads((PTAL / "index.json").read_text())]
    assert len(stems) == 45
    for stem in stems:
        img = load_image(PTAL / f"{stem}.tif")
        assert img.data.shape == (512, 512) and img.data.dtype == np.float32
        assert img.calibration is None and img.flags == [] and img.meta["compression"] == "LZW"
    mask = load_image(PTAL / f"{stems[1]}_mask.png")
    assert mask.data.shape == (512, 512) and set(np.unique(mask.data)) <= {0.0, 255.0}


# --------------------------------------------------------------------------- synthetic TIFFs
def ramp(dtype, shape=(64, 80)):
    info = np.iinfo(dtype) if np.dtype(dtype).kind in "ui" else None
    hi = min(info.max, 2**24) if info else 1.0
    return (np.linspace(0, hi, shape[0] * shape[1]).reshape(shape)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.uint32, np.float32])
@pytest.mark.parametrize("compression", [None, "lzw", "deflate"])
def test_tiff_dtypes_and_compressions(tmp_path, dtype, compression):
    arr = ramp(dtype)
    path = tmp_path / "a.tif"
    tifffile.imwrite(path, arr, compression=compression)
    img = load_image(path)
    np.testing.assert_array_equal(img.data, arr.astype(np.float32))
    assert img.calibration is None and img.flags == [] and img.meta["dtype"] == str(arr.dtype)


def test_multipage_raw_plus_rgb_annotation(tmp_path):
    raw = ramp(np.uint16)
    rgb = np.zeros(raw.shape + (3,), np.uint8)
    rgb[..., 0] = 255  # burned-in red annotation
    path = tmp_path / "mp.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(rgb, photometric="rgb")  # display page first, so "first page" would be wrong
        tw.write(raw, photometric="minisblack")
    img = load_image(path)
    np.testing.assert_array_equal(img.data, raw.astype(np.float32))
    assert img.meta["page"] == 1 and "multipage_picked_raw" in img.flags
    assert "rgb_converted" not in img.flags


def test_multipage_haadf_page_name(tmp_path):
    a, b = ramp(np.uint16), ramp(np.uint16)[::-1].copy()
    path = tmp_path / "det.tif"
    with tifffile.TiffWriter(path) as tw:
        tw.write(a, extratags=[(285, "s", 0, "BF", True)])
        tw.write(b, extratags=[(285, "s", 0, "HAADF", True)])
    img = load_image(path)
    assert img.meta["page"] == 1
    np.testing.assert_array_equal(img.data, b.astype(np.float32))


@pytest.mark.parametrize("imagej", [False, True])
def test_3d_stack_raises(tmp_path, imagej):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.zeros((40, 32, 32), np.uint16), imagej=imagej)
    with pytest.raises(UnreadableImage, match="3-D stack of 40 frames"):
        load_image(path)


@pytest.mark.parametrize("unit,res,nm", [("nm", 4.0, 0.25), ("micron", 1 / 0.0015, 1.5),
                                         ("\\u00B5m", 1 / 0.002, 2.0), ("um", 1000.0, 1.0)])
def test_imagej_calibration(tmp_path, unit, res, nm):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, ramp(np.uint16), imagej=True, resolution=(res, res),
                     metadata={"unit": unit})
    img = load_image(path)
    assert img.calibration.source == "imagej" and close(img.calibration.nm_per_px, nm)
    assert img.flags == []


def test_imagej_non_square_and_uncalibrated(tmp_path):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, ramp(np.uint8), imagej=True, resolution=(4.0, 2.0),
                     metadata={"unit": "nm"})
    img = load_image(path)
    assert (img.calibration.nm_per_px_x, img.calibration.nm_per_px_y) == (0.25, 0.5)
    assert close(img.calibration.nm_per_px, 0.375) and "non_square_pixels" in img.flags
    tifffile.imwrite(path, ramp(np.uint8), imagej=True, resolution=(4.0, 4.0),
                     metadata={"unit": "pixel"})
    assert load_image(path).calibration is None


def test_rgb_tiff_to_grey(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, rgb, photometric="rgb")
    img = load_image(path)
    expected = rgb.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    np.testing.assert_allclose(img.data, expected, rtol=1e-6)
    assert "rgb_converted" in img.flags
    grey = np.repeat(ramp(np.uint8, (40, 50))[..., None], 4, axis=2)  # RGBA, equal channels
    tifffile.imwrite(path, grey, photometric="rgb")
    np.testing.assert_array_equal(load_image(path).data, grey[..., 0].astype(np.float32))


def test_colour_is_kept_only_where_an_rgb_file_has_colour(tmp_path):
    """An RGB file's colour is kept beside its grey (for a scale bar drawn in colour), only
    where some pixels have it: grey saved as RGB, or RGB whose channels barely differ
    (a faint tint), keeps none; an RGB TIFF keeps its colour as RGB too."""
    grey = np.repeat(ramp(np.uint8, (60, 80))[..., None], 3, axis=2)
    path = tmp_path / "grey.png"
    assert cv2.imwrite(str(path), grey)
    assert load_image(path).colour is None
    tint = grey.astype(np.int16) + np.array([6, 0, -6])
    assert cv2.imwrite(str(path), np.clip(tint, 0, 255).astype(np.uint8))
    assert load_image(path).colour is None
    marked = grey.copy()
    marked[50:53, 10:60] = (0, 0, 255)  # BGR: a red bar
    assert cv2.imwrite(str(path), marked)
    loaded = load_image(path)
    assert loaded.colour is not None and loaded.colour.shape == (60, 80, 3)
    np.testing.assert_array_equal(loaded.colour[51, 20], (255, 0, 0))  # as RGB
    tif = tmp_path / "rgb.tif"
    tifffile.imwrite(tif, marked[..., ::-1], photometric="rgb")
    assert load_image(tif).colour[51, 20].tolist() == [255, 0, 0]


def test_inch_dpi_is_not_a_calibration(tmp_path):
    path = tmp_path / "dpi.tif"
    for res in (72, 96, 300, 4800):
        tifffile.imwrite(path, ramp(np.uint8), resolution=(res, res), resolutionunit="INCH")
        assert load_image(path).calibration is None


def test_centimetre_resolution(tmp_path):
    path = tmp_path / "cm.tif"
    tifffile.imwrite(path, ramp(np.uint8), resolution=(2e7, 2e7), resolutionunit="CENTIMETER")
    img = load_image(path)  # 2e7 px/cm = 0.5 nm/px
    assert img.calibration.source == "tiff resolution" and close(img.calibration.nm_per_px, 0.5)
    assert "calibration_from_tiff_resolution" in img.flags
    tifffile.imwrite(path, ramp(np.uint8), resolution=(118.11, 118.11),
                     resolutionunit="CENTIMETER")  # 300 dpi written in cm -> 84.7 µm/px
    img = load_image(path)
    assert img.calibration is None and "tiff_resolution_ignored" in img.flags


# --------------------------------------------------------------------------- FEI / Titan
def fei_ini(sections: dict) -> str:
    return "".join(f"[{s}]\r\n" + "".join(f"{k}={v}\r\n" for k, v in kv.items())
                   for s, kv in sections.items())


def write_fei(path, arr, sections):
    tifffile.imwrite(path, arr, extratags=[(34682, "s", 0, fei_ini(sections), True)])


def test_fei_without_scan_uses_hfw(tmp_path):
    arr = ramp(np.uint8, (230, 256))
    path = tmp_path / "fei.tif"
    write_fei(path, arr, {"Beam": {"Beam": "EBeam"}, "EBeam": {"HFW": 5.12e-07, "VFW": 4e-07},
                          "Image": {"ResolutionX": 256, "ResolutionY": 200}})
    img = load_image(path)
    assert img.calibration.source == "fei_metadata EBeam.HFW / Image.ResolutionX"
    assert close(img.calibration.nm_per_px_x, 2.0) and close(img.calibration.nm_per_px_y, 2.0)
    assert img.data.shape == (200, 256) and img.meta["databar"].shape == (30, 256)


def test_fei_escan_section(tmp_path):
    path = tmp_path / "fei.tif"
    write_fei(path, ramp(np.uint16, (100, 120)),
              {"Beam": {"Scan": "EScan"}, "EScan": {"PixelWidth": 1.5e-09, "PixelHeight": 1.5e-09}})
    img = load_image(path)
    assert img.calibration.source == "fei_metadata EScan.PixelWidth"
    assert close(img.calibration.nm_per_px, 1.5) and img.data.shape == (100, 120)


def test_fei_databar_detected_without_resolution_y(tmp_path):
    raw = tifffile.imread(FORMATS / "FEI-Helios-Ebeam-16bits.tif")  # the real bar, no [Image]
    path = tmp_path / "fei.tif"
    write_fei(path, raw, {"Scan": {"PixelWidth": 1e-09, "PixelHeight": 1e-09}})
    img = load_image(path)
    assert img.data.shape == (442, 512) and "databar_detected" in img.flags
    write_fei(path, ramp(np.uint16, (120, 100)), {"Scan": {"PixelWidth": 1e-09}})
    img = load_image(path)  # no bar: nothing cropped
    assert img.data.shape == (120, 100) and "databar" not in img.meta


TITAN_XML = {  # three layouts documented by public readers (see io._titan_xml)
    "thermo": ('<?xml version="1.0" encoding="utf-16"?><Metadata><Instrument><Manufacturer>FEI'
               '</Manufacturer></Instrument><BinaryResult><PixelSize><X unit="m">1.25e-10</X>'
               '<Y unit="m">1.25e-10</Y></PixelSize></BinaryResult></Metadata>', 0.125, 0),
    "phenom": ('<?xml version="1.0"?><FeiImage><databarHeight>16</databarHeight>'
               '<pixelWidth unit="nm">2.5</pixelWidth><pixelHeight unit="nm">2.5</pixelHeight>'
               '</FeiImage>', 2.5, 16),
    "tia": ('<Root><Data><Label>Microscope</Label><Value>Titan</Value><Unit></Unit></Data>'
            '<PixelSize><X>0.0008</X><Y>0.0008</Y></PixelSize></Root>', 0.8, 0),
}


@pytest.mark.parametrize("kind", list(TITAN_XML))
def test_fei_titan_xml(tmp_path, kind):
    xml, nm, bar = TITAN_XML[kind]
    path = tmp_path / "titan.tif"
    tifffile.imwrite(path, ramp(np.uint16, (96, 64)), extratags=[(34683, "s", 0, xml, True)])
    img = load_image(path)
    assert img.calibration.source == "FEI_TITAN xml" and close(img.calibration.nm_per_px, nm)
    assert img.data.shape == (96 - bar, 64)
    assert ("titan_xml_unit_assumed" in img.flags) == (kind == "tia")


def test_fei_titan_bad_xml(tmp_path):
    path = tmp_path / "titan.tif"
    tifffile.imwrite(path, ramp(np.uint8), extratags=[(34683, "s", 0, "<Root><oops>", True)])
    img = load_image(path)
    assert img.calibration is None and "titan_xml_unparsable" in img.flags


def test_fei_titan_garbage_value_keeps_image(tmp_path):
    path = tmp_path / "titan.tif"
    xml = "<Metadata><PixelSize><X unit='m'>n/a</X></PixelSize></Metadata>"
    tifffile.imwrite(path, ramp(np.uint8), extratags=[(34683, "s", 0, xml, True)])
    img = load_image(path)  # bad metadata costs the calibration, not the image
    assert img.calibration is None and "calibration_metadata_unreadable" in img.flags


def test_zeiss_tag_via_rsciio(tmp_path):
    # CZ_SEM: the 4th unnamed value is the pixel size in m for a 1024 px wide image
    sem = "0\r\n0\r\n0\r\n2.5e-09\r\nAP_PIXEL_SIZE\r\nPixel Size = 5.0 nm\r\n"
    path = tmp_path / "zeiss.tif"
    tifffile.imwrite(path, ramp(np.uint16, (300, 512)), extratags=[(34118, "s", 0, sem, True)])
    cal = load_image(path).calibration
    assert cal.source == "rsciio tiff" and close(cal.nm_per_px, 5.0)


# --------------------------------------------------------------------------- other rasters
def test_png_jpeg(tmp_path):
    cv2 = pytest.importorskip("cv2")
    a16 = ramp(np.uint16)
    cv2.imwrite(str(tmp_path / "a.png"), a16)
    np.testing.assert_array_equal(load_image(tmp_path / "a.png").data, a16.astype(np.float32))
    bgr = np.zeros((32, 32, 3), np.uint8)
    bgr[..., 2] = 200  # red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "a.jpg"), bgr)
    img = load_image(tmp_path / "a.jpg")
    assert {"rgb_converted", "lossy_jpeg"} <= set(img.flags)
    assert abs(float(img.data.mean()) - 0.299 * 200) < 3
    (tmp_path / "png_named.tif").write_bytes((tmp_path / "a.png").read_bytes())
    assert load_image(tmp_path / "png_named.tif").meta["format"] == "png"


# --------------------------------------------------------------------------- rsciio logic
def test_rsciio_picking_and_units(tmp_path, monkeypatch):
    import rsciio.digitalmicrograph as dm

    def sig(title, shape, units=("nm", "nm"), scales=(1.0, 1.0)):
        axes = [{"size": n, "scale": 1.0, "units": "nm"} for n in shape]
        axes[-2:] = [{"size": shape[-2], "scale": scales[0], "units": units[0]},
                     {"size": shape[-1], "scale": scales[1], "units": units[1]}]
        return {"data": np.ones(shape, np.float32), "axes": axes,
                "metadata": {"General": {"title": title}}}

    path = tmp_path / "x.dm4"
    path.write_bytes(b"\x00\x00\x00\x04" + bytes(100))
    monkeypatch.setattr(dm, "file_reader", lambda p, **kw: [
        sig("EELS", (1, 500)), sig("BF", (8, 8)),
        sig("HAADF", (8, 9), ("µm", "nm"), (0.0011, 1.0))])
    img = load_image(path)  # y in µm, x in nm
    assert img.meta["signal_title"] == "HAADF" and img.data.shape == (8, 9)
    assert (img.calibration.nm_per_px_y, img.calibration.nm_per_px_x) == pytest.approx((1.1, 1.0))
    assert {"mixed_units", "non_square_pixels"} <= set(img.flags)
    monkeypatch.setattr(dm, "file_reader", lambda p, **kw: [sig("A", (8, 8), ("1/nm", "1/nm"))])
    img = load_image(path)  # a diffraction pattern: reciprocal units are not a pixel size
    assert img.calibration is None and "calibration_not_a_length" in img.flags
    monkeypatch.setattr(dm, "file_reader", lambda p, **kw: [sig("S", (40, 8, 8))])
    with pytest.raises(UnreadableImage, match="3-D stack of 40 frames"):
        load_image(path)
    monkeypatch.setattr(dm, "file_reader", lambda p, **kw: [sig("EELS", (1, 500))])
    with pytest.raises(UnreadableImage, match="no 2-D image"):
        load_image(path)


# --------------------------------------------------------------------------- bad inputs
def _truncated(tmp_path, compression):
    path = tmp_path / f"good_{compression}.tif"
    tifffile.imwrite(path, np.random.default_rng(1).integers(0, 65535, (256, 256), np.uint16),
                     compression=compression)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def put(directory: Path, name: str, data: bytes | None = None, mkdir: bool = False) -> Path:
    path = directory / name
    if mkdir:
        path.mkdir()
    elif data is not None:
        path.write_bytes(data)
    return path


def noise(seed: int, n: int = 5000) -> bytes:
    return np.random.default_rng(seed).bytes(n)


BAD = {
    "empty": (lambda t: put(t, "e.tif", b""), "empty file (0 bytes)"),
    "text": (lambda t: put(t, "n.tif", b"hello, I am notes\n" * 20), "not an image: file is text"),
    "ext": (lambda t: put(t, "a.xyz", b"II*\x00" + bytes(64)), "unsupported format .xyz"),
    "random_tif": (lambda t: put(t, "r.tif", b"\x00" + noise(2)), "not a valid TIF file"),
    "tiff_magic_garbage": (lambda t: put(t, "g.TIF", b"II*\x00" + noise(6)),
                           "truncated or corrupt TIFF"),
    "random_dm4": (lambda t: put(t, "r.dm4", b"\x00" + noise(3)),
                   "unreadable digitalmicrograph file"),
    "random_emd": (lambda t: put(t, "r.emd", b"\x00" + noise(5)), "unreadable emd file"),
    "random_png": (lambda t: put(t, "r.png", b"\x89PNG" + noise(4, 500)),
                   "truncated or corrupt PNG"),
    "cut_raw": (lambda t: _truncated(t, None), "truncated or corrupt TIFF"),
    "cut_lzw": (lambda t: _truncated(t, "lzw"), "truncated or corrupt TIFF"),
    "missing": (lambda t: t / "nope.tif", "file not found"),
    "dir": (lambda t: put(t, "d.tif", mkdir=True), "not a regular file"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_inputs_raise_one_line(tmp_path, case):
    make, reason = BAD[case]
    with pytest.raises(UnreadableImage) as info:
        load_image(make(tmp_path))
    msg = str(info.value)
    assert type(info.value) is UnreadableImage and isinstance(info.value, ValueError)
    assert msg.startswith(reason) and "\n" not in msg and len(msg) <= 200


@pytest.mark.parametrize("unit,nm", [("m", 1e9), ("mm", 1e6), ("\u00b5m", 1e3), ("\u03bcm", 1e3),
                                     ("um", 1e3), ("nm", 1.0), ("\u00c5", 0.1), ("\u212b", 0.1),
                                     ("A", 0.1), ("pm", 1e-3), ("1/nm", None), ("px", None),
                                     ("inch", None), ("<undefined>", None)])
def test_unit_names(unit, nm):
    assert unit_nm(unit) == nm


def test_huge_tiff_is_refused_before_its_pixels_are_read(tmp_path):
    path = tmp_path / "mosaic.tif"
    # 20000 x 20000 pixels, written as an empty (sparse) file: it must be refused unread.
    tifffile.imwrite(path, shape=(20000, 20000), dtype=np.uint8)
    with pytest.raises(UnreadableImage, match="too large"):
        load_image(path)
