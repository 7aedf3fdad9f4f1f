"""The profile edge: each particle's edge where its projected thickness meets the support.

Every segmentation engine draws a particle's edge near half its height above the
support. For a sphere that is at 0.87 of its radius (sizes 13 % small), for a
flat-topped crystal near the radius itself, so today's sizes depend on shape and
nothing says so. Here each particle's intensity profile, averaged over rings of equal
star radius (outline.py: its segmented outline scaled, so that ellipsoids and faceted
crystals give the profile of a round particle of their area), is fitted with the
blurred thickness profiles of edge_profiles (sphere to flat top, sloped to straight
sides) over a flat local background, with one probe blur for the whole frame, chosen as
the blur that fits the frame's particles best. The fitted radius moves that particle's
edge: its outline is scaled to the fitted radius, within its own territory (pixels
nearer to it than to any other particle), and a one-pixel gap is kept where two grown
particles would meet, so the mask written by `--mask-out` holds exactly the measured
particles.

A particle whose profile cannot be fitted keeps the segmented edge, and says why:
too_small (under 5 px across), blurred (its radius under six times the frame's
blur: the profile cannot tell a sphere from a flat top, and the frame's other particles
do not show one shape), cut (less than half of the ring around it is its own:
a neighbour, the border or the scale bar), noisy (its contrast too low for its size),
no_fit (the best profile lies at the end of the search or fits far worse than noise),
folded (its outline folds back as seen from its centre: no radius per direction).

A blurred particle is still fitted when the frame's fitted particles show one shape
(at least 20 of them, 80 % one profile): its radius is fitted with that shape alone, as
the frame's evidence for what its small particles are. Without that, particles of 8-20 px
kept the mask edge and came out about 10 % small; on an independent renderer's frames
of mostly small spheres or ellipsoids on a dark support d50 went from -9 to -12 % to
+1.5 %. The JSON counts these particles as `shape_from_frame`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .edge_profiles import SHAPE_NAMES, SHAPES, profile
from .outline import Outline, outlines, star_radius
from .particles import label_particles

EDGES = ("profile", "mask")
SIGMAS_PX = (0.5, 0.7, 1.0, 1.4, 2.0, 2.8)   # the probe blurs tried, px
DEFAULT_SIGMA_PX = 1.0                        # when no particle can tell the blur
MIN_RADIUS_PX = 2.5
MIN_COVERAGE = 0.5
MIN_SNR = 12.0
# Where the blur is a sixth of the radius or more, the blurred profiles of a sphere
# and of a flat top differ by less than the noise, so the fit cannot say where the
# thickness meets the support: such a particle keeps the mask edge ("blurred"). Seen
# on the Pt/alumina tomogram slices (blur 2-2.8 px, radii about 6 px): without this
# rule the profile edge put the median diameter 8 % above the people's masks (IoU
# 0.727 -> 0.655 with starter-v4), with it at 4x blur 0.678, at 6x 0.694; spheres of
# 25-50 px under a 0.7-1.4 px probe keep their profile edge (d50 within 2.2 %).
MIN_RADIUS_PER_BLUR = 6.0
FRAME_SHAPE_FITS = 20     # fitted particles a frame needs before its shape is lent...
FRAME_SHAPE_SHARE = 0.8   # ...and the share of them that must take that one shape
MAX_CHI2 = 30.0
COARSE = np.arange(0.76, 1.4401, 0.04)        # fitted radius / segmented radius
FINE = np.arange(-0.036, 0.0361, 0.006)
SIGMA_SAMPLE = 240                            # particles that choose the frame's blur


@dataclass
class Profiles:
    """Each particle's binned intensity profile against distance from its centre."""
    ids: np.ndarray        # label of each row
    radius: np.ndarray     # segmented equivalent radius sqrt(A / pi), px
    r: np.ndarray          # (n, bins) mean distance of the bin's pixels from the centre
    y: np.ndarray          # (n, bins) mean intensity
    w: np.ndarray          # (n, bins) pixels in the bin
    noise: np.ndarray      # pixel noise (pooled within-bin standard deviation)
    coverage: np.ndarray   # share of the outer ring that is this particle's own


@dataclass
class EdgeFit:
    """The fit of every label: radius factor, shape, and why a label kept its mask edge."""
    sigma_px: float
    factor: np.ndarray                  # per label (index = label); 1 where the mask edge is kept
    shape: np.ndarray                   # index into SHAPES; -1 where not fitted
    reason: np.ndarray                  # "" where fitted
    counts: dict = field(default_factory=dict)
    borrowed: np.ndarray = field(default_factory=lambda: np.zeros(1, bool))  # per label: fitted with the frame's shape


def signed_distance(mask: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance of every pixel to the segmented edge (negative inside, the edge
    at 0 between pixel centres) and the label of the particle it is nearest to."""
    inside = mask.view(np.uint8)
    dist_in = cv2.distanceTransform(inside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    outside = (1 - inside).astype(np.uint8)
    dist_out = cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    _, nearest_px = cv2.distanceTransformWithLabels(outside, cv2.DIST_L2, 5,
                                                    labelType=cv2.DIST_LABEL_PIXEL)
    lut = np.zeros(int(nearest_px.max()) + 1, np.int32)
    lut[nearest_px[mask]] = labels[mask]
    nearest = np.where(mask, labels, lut[nearest_px])
    return np.where(mask, 0.5 - dist_in, dist_out - 0.5).astype(np.float32), nearest


def gather_profiles(image: np.ndarray, labels: np.ndarray, s: np.ndarray, nearest: np.ndarray,
                    exclude: np.ndarray | None, outline: Outline | None = None) -> Profiles:
    """Bin every particle's pixels (its own and the ring around it, out to a third of its
    radius plus 8 px) by their star radius (outline.star_radius: the segmented outline
    scaled to the particle's equivalent radius, so that ellipsoids and faceted crystals,
    whose thickness contours are scaled copies of their outline, give the profile of a
    round particle of their area), all particles at once (bincount)."""
    n = int(labels.max())
    outline = outline or outlines(labels, s)
    ids = np.flatnonzero(outline.area[1:]) + 1
    radius = outline.radius
    reach = 0.35 * radius + 8.0
    width = np.maximum(0.5, radius / 25.0)
    bins = int(np.ceil(((radius + reach) / width)[ids].max())) + 2
    sel = (nearest > 0) & (s <= reach[nearest])
    if exclude is not None:
        sel &= ~exclude
    where = np.flatnonzero(sel)
    lab = nearest.ravel()[where]
    rad = star_radius(outline, where, labels.shape[1], lab)
    val = np.asarray(image, np.float64).ravel()[where]
    b = np.minimum(rad / width[lab], bins - 1).astype(np.int64)
    key, size = lab * bins + b, (n + 1) * bins

    def acc(weights=None):
        return np.bincount(key, weights, minlength=size).reshape(n + 1, bins)[ids]

    w, sy, syy, sr = acc(), acc(val), acc(val * val), acc(rad)
    with np.errstate(invalid="ignore", divide="ignore"):
        y, r = np.where(w > 0, sy / w, 0.0), np.where(w > 0, sr / w, 0.0)
        pooled = (syy - sy * y).sum(1) / np.maximum(w.sum(1) - (w > 0).sum(1), 1)
    outer = np.bincount(lab[s.ravel()[where] > 0], minlength=n + 1)[ids]
    expected = np.pi * ((radius + reach) ** 2 - radius ** 2)[ids]
    return Profiles(ids, radius[ids], r, y, w, np.sqrt(np.maximum(pooled, 1e-12)),
                    np.minimum(1.0, outer / expected))


def _linear(g: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weighted least squares y = b + a g per row: (a, b, weighted sum of squared residuals)."""
    sw, sg, sy = w.sum(1), (w * g).sum(1), (w * y).sum(1)
    sgg, sgy = (w * g * g).sum(1), (w * g * y).sum(1)
    det = sw * sgg - sg * sg
    with np.errstate(invalid="ignore", divide="ignore"):
        a = np.where(det > 1e-12, (sw * sgy - sg * sy) / det, 0.0)
        b = (sy - a * sg) / np.maximum(sw, 1e-12)
    res = y - b[:, None] - a[:, None] * g
    return a, b, (w * res * res).sum(1)


def best_profiles(p: Profiles, sigma: float, factors: np.ndarray,
                  shapes: range | None = None) -> tuple[np.ndarray, ...]:
    """For each particle the best (chi-square, factor, shape, amplitude) over the
    candidate radius factors (n, m) and the shapes."""
    n = p.ids.size
    best, fac, shp, amp = np.full(n, np.inf), np.ones(n), np.full(n, -1), np.zeros(n)
    var = p.noise ** 2
    for shape in shapes or range(len(SHAPES)):
        for j in range(factors.shape[1]):
            radius = p.radius * factors[:, j]
            a, _, ssr = _linear(profile(p.r, radius[:, None], sigma, shape), p.y, p.w)
            chi2 = np.where(a > 0, ssr / var, np.inf)
            better = chi2 < best
            best[better], fac[better], shp[better], amp[better] = (
                chi2[better], factors[better, j], shape, a[better])
    return best, fac, shp, amp


def fit_radii(p: Profiles, sigma: float, shapes: range | None = None) -> tuple[np.ndarray, ...]:
    """A coarse search of the radius for every shape (or those of `shapes`), then a fine
    one around the best: (chi-square, factor, shape, amplitude, the coarse factor)."""
    coarse = np.broadcast_to(COARSE, (p.ids.size, COARSE.size))
    _, fac, _, _ = best_profiles(p, sigma, coarse, shapes)
    return (*best_profiles(p, sigma, fac[:, None] + FINE[None, :], shapes), fac)


def choose_sigma(p: Profiles, usable: np.ndarray) -> float:
    """The probe blur that fits the frame's particles best (the sum of their
    chi-squares), from a sample of particles across the sizes present: the blurs of
    SIGMAS_PX, then halfway (geometrically) to the best one's neighbours."""
    rows = np.flatnonzero(usable & (p.radius >= 4.0))
    if rows.size < 3:
        return DEFAULT_SIGMA_PX
    rows = rows[np.argsort(p.radius[rows])]
    rows = rows[np.linspace(0, rows.size - 1, min(rows.size, SIGMA_SAMPLE)).astype(int)]
    sub = Profiles(p.ids[rows], p.radius[rows], p.r[rows], p.y[rows], p.w[rows],
                   p.noise[rows], p.coverage[rows])

    def total(sigma: float) -> float:
        return float(np.sum(np.minimum(fit_radii(sub, sigma)[0], 1e6)))

    tried = {s: total(s) for s in SIGMAS_PX}
    best = min(tried, key=tried.get)
    i = SIGMAS_PX.index(best)
    for j in (i - 1, i + 1):
        if 0 <= j < len(SIGMAS_PX):
            mid = float(np.sqrt(best * SIGMAS_PX[j]))
            tried[mid] = total(mid)
    return round(float(min(tried, key=tried.get)), 3)


def fit_edges(image: np.ndarray, labels: np.ndarray, s: np.ndarray, nearest: np.ndarray,
              exclude: np.ndarray | None = None, outline: Outline | None = None) -> EdgeFit:
    """Fit every label's profile; the labels that cannot be fitted keep factor 1."""
    n = int(labels.max())
    factor, shape, reason = np.ones(n + 1), np.full(n + 1, -1), np.full(n + 1, "", object)
    if n == 0:
        return EdgeFit(DEFAULT_SIGMA_PX, factor, shape, reason, {"profile": 0}, np.zeros(n + 1, bool))
    outline = outline or outlines(labels, s)
    p = gather_profiles(image, labels, s, nearest, exclude, outline)
    why = np.full(p.ids.size, "", object)
    why[outline.folded[p.ids]] = "folded"
    why[p.coverage < MIN_COVERAGE] = "cut"
    why[p.radius < MIN_RADIUS_PX] = "too_small"
    sigma = choose_sigma(p, why == "")
    chi2, fac, shp, amp, _ = fit_radii(p, sigma)
    snr = amp / p.noise * np.sqrt(2 * np.pi * p.radius)
    bins = (p.w > 0).sum(1)
    ends = (fac <= COARSE[0] + 1e-6) | (fac >= COARSE[-1] - 1e-6)
    why[(why == "") & (snr < MIN_SNR)] = "noisy"
    why[(why == "") & (p.radius < MIN_RADIUS_PER_BLUR * sigma)] = "blurred"
    why[(why == "") & (ends | ~np.isfinite(chi2) | (chi2 > MAX_CHI2 * bins))] = "no_fit"
    lent = fit_with_frame_shape(p, sigma, why, fac, shp)
    ok = why == ""
    factor[p.ids[ok]], shape[p.ids[ok]], reason[p.ids] = fac[ok], shp[ok], why
    borrowed = np.zeros(n + 1, bool)
    borrowed[p.ids[lent]] = True
    kinds, counts = np.unique(why, return_counts=True)
    summary = {("profile" if k == "" else k): int(c) for k, c in zip(kinds, counts)}
    return EdgeFit(sigma, factor, shape, reason, summary, borrowed)


def fit_with_frame_shape(p: Profiles, sigma: float, why: np.ndarray, fac: np.ndarray,
                         shp: np.ndarray) -> np.ndarray:
    """Fit the blurred particles' radii with the one shape the frame's fitted particles
    take (module docstring), in place: those that fit well lose their reason. Returns
    the rows fitted so."""
    ok = why == ""
    if ok.sum() < FRAME_SHAPE_FITS:
        return np.zeros(0, np.int64)
    kinds, counts = np.unique(shp[ok], return_counts=True)
    if counts.max() < FRAME_SHAPE_SHARE * ok.sum():
        return np.zeros(0, np.int64)
    rows = np.flatnonzero(why == "blurred")
    if not rows.size:
        return rows
    one = range(int(kinds[np.argmax(counts)]), int(kinds[np.argmax(counts)]) + 1)
    sub = Profiles(p.ids[rows], p.radius[rows], p.r[rows], p.y[rows], p.w[rows], p.noise[rows], p.coverage[rows])
    chi2, f, s, a, first = fit_radii(sub, sigma, one)
    ends = (first <= COARSE[0] + 1e-6) | (first >= COARSE[-1] - 1e-6)
    snr = a / sub.noise * np.sqrt(2 * np.pi * sub.radius)
    good = np.isfinite(chi2) & (chi2 <= MAX_CHI2 * (sub.w > 0).sum(1)) & ~ends & (snr >= MIN_SNR)
    rows = rows[good]
    why[rows], fac[rows], shp[rows] = "", f[good], s[good]
    return rows


def grow_to_fit(labels: np.ndarray, s: np.ndarray, nearest: np.ndarray, fit: EdgeFit,
                outline: Outline | None = None) -> np.ndarray:
    """The label image with every fitted particle's outline scaled to its fitted radius
    (pixels whose star radius is within it, in the particle's territory: the area is the
    one the fit found, whatever the shape); the others keep their segmented pixels. A
    grown pixel that would touch another particle is left out, so particles that were
    apart stay apart (ImageJ sees the same particles)."""
    outline = outline or outlines(labels, s)
    fitted = fit.shape >= 0
    fitted[0] = False
    # how far beyond the segmented edge a pixel may join: the scaled outline moves
    # furthest at an ellipse's ends or a polygon's corners, under 1.5x its mean shift
    shift = outline.radius * (fit.factor - 1.0)
    limit = np.where(fitted, 1.5 * np.maximum(shift, 0.0) + 1.5, 0.0)
    limit[0] = -np.inf
    where = np.flatnonzero(s <= limit[nearest])
    lab = nearest.ravel()[where]
    was = labels.ravel()[where] > 0
    rho = star_radius(outline, where, labels.shape[1], lab)
    within = rho <= (outline.radius * fit.factor)[lab]
    keep = np.where(fitted[lab], within | (was & (fit.factor[lab] >= 1.0)), was)
    grown = np.zeros(labels.shape, np.int32)
    grown.ravel()[where[keep]] = lab[keep]
    new = (grown > 0) & (labels == 0)
    if new.any():
        as_float = grown.astype(np.float32)
        high = cv2.dilate(as_float, np.ones((3, 3), np.uint8))
        low = cv2.erode(np.where(grown > 0, as_float, np.float32(3e38)), np.ones((3, 3), np.uint8))
        clash = new & ((high != as_float) | (low != as_float))
        grown[clash] = 0
    return grown


def grown_from(old_labels: np.ndarray, new_labels: np.ndarray) -> dict[int, int]:
    """For each measured particle (a label of the final mask) the fitted label it grew from."""
    both = (old_labels > 0) & (new_labels > 0)
    if not both.any():
        return {}
    pairs, counts = np.unique(np.stack([new_labels[both], old_labels[both]]), axis=1,
                              return_counts=True)
    order = np.lexsort((counts, pairs[0]))
    pairs = pairs[:, order]
    last = np.r_[pairs[0, 1:] != pairs[0, :-1], True]   # the most frequent old label per new
    return {int(new): int(old) for new, old in pairs[:, last].T}


def particle_edges(origin: dict[int, int], fit: EdgeFit) -> dict[int, str]:
    """Each measured particle's edge: "profile" when the label it grew from was fitted,
    else the reason it was not."""
    return {new: (fit.reason[old] or "profile") for new, old in origin.items()}


def sizes_by_shape(fit: EdgeFit) -> dict[str, int]:
    """How many fitted particles took each profile shape (for the JSON's checks)."""
    kinds, counts = np.unique(fit.shape[fit.shape >= 0], return_counts=True)
    return {SHAPE_NAMES[k]: int(c) for k, c in zip(kinds, counts)}


def profile_edge(image: np.ndarray, mask: np.ndarray, exclude: np.ndarray | None,
                 watershed: bool = False) -> tuple[np.ndarray, EdgeFit]:
    """Every particle of a cleaned mask moved to its profile edge: the grown label
    image (0 = support) and the fit. Particles at the border are moved too, so the
    written mask is one convention throughout."""
    labels = label_particles(mask, exclude_border=False, watershed=watershed)
    s, nearest = signed_distance(labels > 0, labels)
    outline = outlines(labels, s)
    fit = fit_edges(np.asarray(image, np.float32), labels, s, nearest, exclude, outline)
    return grow_to_fit(labels, s, nearest, fit, outline), fit


def edge_summary(convention: str, fit: EdgeFit | None, measured: dict[int, str],
                 origin: dict[int, int] | None = None) -> dict:
    """The JSON's `edge`: the convention, how many measured particles have a profile
    edge (and how many of those took the frame's shape) and how many kept the mask edge
    (and why), the blur, the shapes fitted."""
    if fit is None:
        return {"convention": convention, "profile": 0, "kept_mask": len(measured)}
    why = [e for e in measured.values() if e != "profile"]
    kinds, counts = np.unique(np.array(why, dtype=object), return_counts=True) if why else ((), ())
    return {"convention": convention, "profile": len(measured) - len(why), "kept_mask": len(why),
            "kept_mask_why": {str(k): int(c) for k, c in zip(kinds, counts)},
            "shape_from_frame": sum(bool(fit.borrowed[old]) for old in (origin or {}).values()),
            "blur_px": fit.sigma_px,
            "shapes": sizes_by_shape(fit)}
