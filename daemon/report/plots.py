"""Inline SVG geometry of the PSD plots (histogram with the lognormal fit, cumulative
curve): numbers in Python, markup in the templates. The pages are opened from a
share without a server or internet, so there is no plotting library in the browser."""

from __future__ import annotations

import math

import numpy as np

from ...pipeline.measure import psd
from ...pipeline.measure.psd_histogram import SizeHistogram


class _Values:
    """Diameters held as an array, read through SizeHistogram's methods, so that a
    plot draws a small sample's particles and a large one's merged histogram alike."""

    def __init__(self, d: np.ndarray):
        d = np.asarray(d, float)
        self.d = np.sort(d[np.isfinite(d) & (d > 0)])
        self.n = int(self.d.size)

    def percentile(self, q):
        return np.percentile(self.d, q)

    def quantile(self, p):
        return np.quantile(self.d, p)

    def max(self) -> float:
        return float(self.d[-1])

    def count_outside(self, lo: float, hi: float) -> int:
        return int((self.d > hi).sum() + (self.d < lo).sum())

    def histogram(self, edges):
        return np.histogram(self.d, edges)[0]

    def up_to(self, hi: float) -> "_Values":
        return _Values(self.d[self.d <= hi])

    def expanded(self) -> np.ndarray:
        return self.d


def sizes_of(d) -> "_Values | SizeHistogram":
    """A plot's input: an array of diameters or a sample's merged histogram."""
    return d if isinstance(d, (SizeHistogram, _Values)) else _Values(d)


def format_number(value: float | None, unit: str | None = None) -> str:
    """Three significant figures, never in exponent notation (a microscopist
    reads "0.812 nm", "3.46 nm", "128 nm"); an em dash for a missing value."""
    if value is None or not math.isfinite(value):
        return "\u2014"
    a = abs(value)
    if a >= 100:
        text = f"{value:.0f}"
    elif a >= 10:
        text = f"{value:.1f}"
    elif a >= 1:
        text = f"{value:.2f}"
    elif a == 0:
        text = "0"
    else:
        text = f"{value:.{max(2, 2 - math.floor(math.log10(a)))}f}"
    return f"{text} {unit}" if unit else text


PLOT_W, PLOT_H = 560, 330
MARGIN = {"left": 58, "right": 16, "top": 16, "bottom": 48}


def nice_ticks(lo: float, hi: float, target: int = 6, integer: bool = False) -> tuple[list[float], float]:
    """Round tick values (1, 2, 2.5, 5 x 10^k) covering [lo, hi]; with `integer`
    (counts of particles) whole steps only: no "2.5 particles" on an axis."""
    span = hi - lo if hi > lo else (abs(hi) or 1.0)
    raw = span / max(1, target)
    if integer:
        raw = max(raw, 1.0)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10)
                if m * mag >= raw * 0.999 and not (integer and (m * mag) % 1))
    first = math.ceil(lo / step - 1e-9) * step
    ticks, k = [], 0
    while first + k * step <= hi + step * 1e-9:
        ticks.append(round(first + k * step, 12))
        k += 1
    return ticks, step


def _nice_step(raw: float) -> float:
    """The 1, 2, 2.5 or 5 x 10^k nearest to raw (in ratio): bin widths people can read."""
    mag = 10 ** math.floor(math.log10(raw))
    return min((m * mag for m in (1, 2, 2.5, 5, 10)), key=lambda v: abs(math.log(v / raw)))


def _tick_label(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) + (1 if round(step / 10 ** math.floor(math.log10(step)), 3) == 2.5 else 0)
    return f"{value:.{decimals}f}"


class _Frame:
    """Maps data to SVG coordinates for one plot."""

    def __init__(self, x0: float, x1: float, y0: float, y1: float):
        self.x0, self.x1, self.y0, self.y1 = x0, x1, y0, y1
        self.left, self.top = MARGIN["left"], MARGIN["top"]
        self.width = PLOT_W - MARGIN["left"] - MARGIN["right"]
        self.height = PLOT_H - MARGIN["top"] - MARGIN["bottom"]

    def x(self, v):
        return self.left + (np.asarray(v, float) - self.x0) / (self.x1 - self.x0) * self.width

    def y(self, v):
        return self.top + self.height - (np.asarray(v, float) - self.y0) / (self.y1 - self.y0) * self.height

    def path(self, xs, ys) -> str:
        px, py = self.x(xs), self.y(ys)
        keep = np.isfinite(px) & np.isfinite(py)
        pts = [f"{a:.1f},{b:.1f}" for a, b in zip(px[keep], py[keep])]
        return ("M" + " L".join(pts)) if pts else ""

    def axes(self, xstep_ticks, ystep_ticks, xlabel: str, ylabel: str) -> dict:
        (xt, xs), (yt, ys) = xstep_ticks, ystep_ticks
        return {
            "w": PLOT_W, "h": PLOT_H, "left": self.left, "top": self.top,
            "right": self.left + self.width, "bottom": self.top + self.height,
            "xticks": [{"pos": round(float(self.x(t)), 1), "label": _tick_label(t, xs)}
                       for t in xt if self.x0 - 1e-9 <= t <= self.x1 + 1e-9],
            "yticks": [{"pos": round(float(self.y(t)), 1), "label": _tick_label(t, ys)}
                       for t in yt if self.y0 - 1e-9 <= t <= self.y1 + 1e-9],
            "xlabel": xlabel, "ylabel": ylabel,
        }


def _x_range(d) -> tuple[float, float, int]:
    """The diameter axis: from 0, unless all particles sit far from 0 (a narrow
    distribution would be squeezed into a corner), to the largest particle,
    unless a few outliers would do the same squeezing: then to the 99.5th
    percentile, and the number of particles off scale is shown on the plot."""
    d = sizes_of(d)
    top = float(d.max())
    p995 = float(d.percentile(99.5))
    if d.n >= 50 and top > 1.6 * p995:
        top = p995 * 1.08
    low = float(d.percentile(0.5))
    ticks, step = nice_ticks(0.0, top)
    x0 = 0.0
    if low > 0.45 * top:
        ticks, step = nice_ticks(low * 0.95, top)
        x0 = ticks[0] - step if ticks[0] > low * 0.95 else ticks[0]
    x1 = ticks[-1] if ticks[-1] >= top else ticks[-1] + step
    return x0, x1, d.count_outside(x0, x1)


def histogram_plot(d, summary: dict, unit: str) -> dict | None:
    """Geometry of the histogram (number of particles per bin) with the fitted
    lognormal scaled to counts; bins by the Freedman-Diaconis rule, rounded to a
    nice width, between 8 and 60 of them over the plotted range."""
    d = sizes_of(d)
    if d.n == 0:
        return None
    x0, x1, off = _x_range(d)
    q75, q25 = d.up_to(x1).percentile((75, 25))
    fd = 2 * (q75 - q25) / d.n ** (1 / 3)
    bins = min(60, max(8, math.ceil((x1 - x0) / fd))) if fd > 0 else 20
    width = _nice_step((x1 - x0) / bins)
    edges = np.arange(x0, x1 + width * 0.5, width)
    if edges[-1] < x1:
        edges = np.append(edges, edges[-1] + width)
    counts = d.histogram(edges)
    x1 = float(edges[-1])
    xs = np.linspace(max(x0, x1 / 2000, 1e-9), x1, 240)
    fit = None
    if summary.get("lognormal_median") and d.n > 1:
        fit = d.n * width * psd.lognormal_pdf(xs, summary["lognormal_median"], summary["lognormal_sigma_g"])
    # The fit may peak above the bars (a narrow fit on coarse bins) but must not
    # flatten them: the axis stops at 1.5 x the tallest bar and the curve is clipped.
    tallest = float(counts.max())
    fit_top = float(np.nanmax(fit)) if fit is not None else 0.0
    ytop = max(tallest, min(fit_top, 1.5 * tallest)) * 1.08 or 1.0
    yt = nice_ticks(0, ytop, 5, integer=True)
    if yt[0][-1] < ytop:
        yt[0].append(yt[0][-1] + yt[1])
    f = _Frame(x0, x1, 0, yt[0][-1])
    plot = f.axes(nice_ticks(x0, x1), yt, f"equivalent circular diameter / {unit}", "particles")
    plot["bars"] = [{"x": round(float(f.x(a)), 2), "w": round(float(f.x(a + width) - f.x(a)), 2),
                     "y": round(float(f.y(c)), 2), "h": round(float(f.y(0) - f.y(c)), 2),
                     "title": f"{_tick_label(a, width)}\u2013{_tick_label(a + width, width)} {unit}: {c}"}
                    for a, c in zip(edges[:-1], counts) if c > 0]
    plot["fit"] = f.path(xs, np.minimum(fit, f.y1)) if fit is not None else ""
    plot["markers"] = _markers(f, summary)
    plot["off_scale"] = off
    plot["bin_width"] = _tick_label(width, width)
    return plot


def _markers(f: _Frame, summary: dict) -> list[dict]:
    """d10/d50/d90 lines; a label that would collide with its left neighbour
    moves one line down."""
    out, last_x, last_row = [], -1e9, 1
    for k in ("d10", "d50", "d90"):
        v = summary.get(k)
        if v is None or not f.x0 <= v <= f.x1:
            continue
        x = round(float(f.x(v)), 1)
        row = 1 - last_row if x - last_x < 28 else 0
        out.append({"x": x, "label": k, "dy": 13 * row})
        last_x, last_row = x, row
    return out


def cumulative_plot(d: np.ndarray, summary: dict, unit: str) -> dict | None:
    """Geometry of the cumulative number distribution (empirical, as a step
    curve, sampled at 600 quantiles for large samples so the page stays small)
    with the fitted lognormal's cumulative curve and d10/d50/d90."""
    d = sizes_of(d)
    if d.n == 0:
        return None
    x0, x1, off = _x_range(d)
    f = _Frame(x0, x1, 0, 100)
    plot = f.axes(nice_ticks(x0, x1), nice_ticks(0, 100, 5), f"equivalent circular diameter / {unit}",
                  "cumulative number / %")
    if d.n <= 600:
        values = d.expanded()
        xs = np.repeat(values, 2)
        ys = np.repeat(np.arange(d.n + 1) / d.n * 100, 2)[1:-1]
    else:
        p = np.linspace(0, 1, 601)
        xs, ys = d.quantile(p), p * 100
    xs = np.concatenate([[x0], np.clip(xs, x0, x1), [x1]])
    ys = np.concatenate([[0], ys, [ys[-1] if d.max() > x1 else 100]])
    plot["ecdf"] = f.path(xs, ys)
    plot["fit"] = ""
    if summary.get("lognormal_median") and d.n > 1:
        fx = np.linspace(max(x0, x1 / 2000, 1e-9), x1, 240)
        plot["fit"] = f.path(fx, 100 * psd.lognormal_cdf(fx, summary["lognormal_median"],
                                                     summary["lognormal_sigma_g"]))
    plot["markers"] = _markers(f, summary)
    plot["levels"] = [{"y": round(float(f.y(v)), 1), "label": f"{v} %"} for v in (10, 50, 90)]
    plot["off_scale"] = off
    return plot


ROW_H = 22


def d50_dotplot(samples: list[dict], max_rows: int = 40) -> dict | None:
    """Samples side by side: each sample's d50 as a dot with its 95 % interval as a
    bar, on one shared nm axis, most recent first (at most max_rows). Samples
    without an nm PSD are left out."""
    rows = [s for s in samples if s.get("d50") is not None][:max_rows]
    if not rows:
        return None
    lows = [s["d50_lo"] if s.get("d50_lo") is not None else s["d50"] for s in rows]
    highs = [s["d50_hi"] if s.get("d50_hi") is not None else s["d50"] for s in rows]
    lo, hi = min(lows), max(highs)
    pad = 0.08 * (hi - lo) if hi > lo else 0.25 * hi or 1.0
    xt, xs = nice_ticks(max(0.0, lo - pad), hi + pad)
    x0, x1 = min(xt[0], max(0.0, lo - pad)), max(xt[-1], hi + pad)
    left, right, top = 170, PLOT_W - MARGIN["right"], 12
    height = ROW_H * len(rows)
    x = lambda v: left + (v - x0) / (x1 - x0) * (right - left)  # noqa: E731
    return {
        "w": PLOT_W, "h": top + height + 44, "left": left, "right": right, "top": top, "bottom": top + height,
        "xticks": [{"pos": round(x(t), 1), "label": _tick_label(t, xs)} for t in xt if x0 <= t <= x1],
        "rows": [{"y": top + ROW_H * (i + 0.5), "label": s["sample"][:28], "name": s["sample"],
                  "x": round(x(s["d50"]), 1), "lo": round(x(a), 1), "hi": round(x(b), 1),
                  "title": f"{s['sample']}: d50 {format_number(s['d50'], 'nm')}"
                           + (f" (95 % CI {format_number(a)}-{format_number(b, 'nm')})" if b > a else "")}
                 for i, (s, a, b) in enumerate(zip(rows, lows, highs))],
        "xlabel": "d50 / nm, with its 95 % interval",
    }


QUANTILE_POINTS = 201  # 0, 0.5, ..., 100 %: a smooth curve, 2 kB per sample in the index's cache
# Twelve colours told apart on screen and in print (Paul Tol's "muted" and "bright" sets).
PALETTE = ("#332288", "#88ccee", "#44aa99", "#117733", "#999933", "#ddcc77",
           "#cc6677", "#882255", "#aa4499", "#4477aa", "#ee6677", "#bbbbbb")


def psd_quantiles(d: np.ndarray) -> list[float] | None:
    """A sample's cumulative PSD in QUANTILE_POINTS numbers (nm), for the index's
    overlay: cached with the sample's summary, so the index never reads particles."""
    d = sizes_of(d)
    if d.n == 0:
        return None
    return [float(f"{v:.4g}") for v in d.quantile(np.linspace(0, 1, QUANTILE_POINTS))]


def overlay_plot(samples: list[dict], max_samples: int = 12) -> dict | None:
    """Samples side by side: the cumulative PSDs of the most recent `max_samples`
    samples with an nm PSD (samples come most recent first) on one nm axis, one
    colour each, named in the legend with their d50."""
    rows = [s for s in samples if s.get("quantiles")][:max_samples]
    if not rows:
        return None
    curves = [np.asarray(s["quantiles"], float) for s in rows]
    x0, x1, _ = _x_range(np.concatenate(curves))
    f = _Frame(x0, x1, 0, 100)
    plot = f.axes(nice_ticks(x0, x1), nice_ticks(0, 100, 5), "equivalent circular diameter / nm",
                  "cumulative number / %")
    ys = np.linspace(0, 100, QUANTILE_POINTS)
    plot["curves"] = []
    for k, (s, q) in enumerate(zip(rows, curves)):
        inside = (q >= x0) & (q <= x1)
        plot["curves"].append({
            "path": f.path(q[inside], ys[inside]), "colour": PALETTE[k % len(PALETTE)],
            "label": s["sample"][:24], "name": s["sample"],
            "title": f"{s['sample']}: cumulative PSD, d50 {format_number(s.get('d50'), 'nm')}, n = {s.get('n')}",
            "d50": format_number(s.get("d50"), "nm")})
    plot["legend_h"] = 16 * len(rows) + 8
    plot["left_out"] = sum(1 for s in samples if s.get("quantiles")) - len(rows)
    return plot
