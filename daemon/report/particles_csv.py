"""The sample's particles as a CSV people open in Fiji, Excel or pandas."""

from __future__ import annotations

import csv
import io
from typing import BinaryIO

import numpy as np

from ..store.queries import EDGE_CODES, PARTICLE_FIELDS

# CSV: Fiji's "Results" column names, so people can reuse their macros and habits.
CSV_COLUMNS = [" ", "Label", "Particle", "Area", "Perim.", "X", "Y", "Feret", "MinFeret",
               "Circ.", "Solidity", "Mean", "ECD", "Unit", "ScaleSource", "Edge"]
# (store column in nm, store column in px, power of the length unit, decimals)
_CSV_MEASURES = [("area_nm2", "area_px", 2, 3), ("perimeter_nm", "perimeter_px", 1, 3),
                 (None, "x", 1, 3), (None, "y", 1, 3),
                 ("feret_max_nm", "feret_max_px", 1, 3), ("feret_min_nm", "feret_min_px", 1, 3)]


def write_csv(f: BinaryIO, parts: np.ndarray, images: dict[int, dict], chunk: int = 10_000,
              header: bool = True, first: int = 1) -> None:
    """Fiji "Results"-like CSV (UTF-8 with BOM), one row per particle: lengths in nm and areas in
    nm^2 where the image's scale is known, in px otherwise; the Unit column says
    which, row by row, because a sample can hold both (a comment line would
    break Fiji's and Excel's import). Vectorised and streamed in chunks: 10^5
    rows in about half a second, without holding the whole text in memory.
    header=False and `first` (the first row's number) append to a CSV written before."""
    # UTF-8 with a byte order mark, at the start of the file only (with the header, never
    # on an append): Excel on Windows reads a CSV without one in the ANSI code page
    # ("Ã‰" for "É"); Fiji, pandas and LibreOffice skip the mark.
    out = io.TextIOWrapper(f, encoding="utf-8-sig" if header else "utf-8", newline="")
    if header:
        csv.writer(out, lineterminator="\n").writerow(CSV_COLUMNS)
    if parts.shape[0] == 0:
        out.flush()
        out.detach()
        return
    col = {f: parts[:, i] for i, f in enumerate(PARTICLE_FIELDS)}
    ids = col["image_id"].astype(np.int64)
    k_of = {i: (images[i]["nm_per_px"] or np.nan) for i in np.unique(ids).tolist()}
    k = np.array([k_of[i] for i in ids.tolist()]) if len(k_of) > 1 else np.full(ids.size, k_of[ids[0]])
    scaled = np.isfinite(k) & (k > 0)

    def measure(nm_col: str | None, px_col: str, power: int) -> np.ndarray:
        px = col[px_col]
        from_px = px * k ** power
        nm = np.where(np.isnan(col[nm_col]), from_px, col[nm_col]) if nm_col else from_px
        return np.where(scaled, nm, px)

    values = [col["number"]] + [measure(nm, px, power) for nm, px, power, _ in _CSV_MEASURES] + [
        col["circularity"], col["solidity"], col["mean_intensity"],
        np.where(scaled, col["ecd_nm"], col["ecd_px"])]
    template = ",".join(["%.0f"] + [f"%.{d}f" for *_, d in _CSV_MEASURES] + ["%.4f", "%.4f", "%.3f", "%.4f"])
    table = np.column_stack(values)
    # Which edge each size uses ("profile" or "mask"; empty: stored before psdwatch said).
    edge = np.full(ids.size, "", object)
    for name, code in EDGE_CODES.items():
        edge[col["edge"] == code] = name
    # Per image: the quoted label and the unit columns, formatted once.
    prefix, suffix = {}, {}
    for image_id in k_of:
        image = images[image_id]
        label = image["path"]
        if label[:1] in ("=", "+", "@"):  # a spreadsheet would run it as a formula
            label = "'" + label
        cell = io.StringIO()
        csv.writer(cell, lineterminator="").writerow([label])
        prefix[image_id] = cell.getvalue()
        suffix[image_id] = f"{'nm' if image['nm_per_px'] else 'px'},{image['scale_source'] or 'none'}"
    for start in range(0, ids.size, chunk):
        lines = [f"{n},{prefix[i]},{(template % tuple(row)).replace('nan', '')},{suffix[i]},{e}\n"
                 for n, i, row, e in zip(range(first + start, first + start + chunk), ids[start:start + chunk].tolist(),
                                         table[start:start + chunk].tolist(), edge[start:start + chunk])]
        out.write("".join(lines))
    out.flush()
    out.detach()  # the caller's file stays open for write_atomic to close
