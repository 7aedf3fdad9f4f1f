"""The profile edge: each particle's edge where its projected thickness meets the support.

Every segmentation engine draws a particle's edge near half its height above the
support. For a sphere that is at 0.87 of its radius (sizes 13 % small), for a
flat-topped crystal near the radius itself, so today's sizes depend on shape and
nothing says so. Here each particle's intensity profile, averaged over rings of equal
star radius (outline.py: its segmented outline scaled, so that ellipsoids and faceted
crystals give the profile of a round particle of their area), is fitted with the
blurred thickness profiles of edge_profiles (sphere to flat top, sloped to straight
sides) over a flat local background. The frame has one probe blur and one shape, fitted
together to its particles (choose_blur_and_shape); each particle takes the frame's shape
unless its own profile clearly says otherwise (pick_shapes), and pixels at a detector's
clip (saturated cores, a support at black) are left out of every profile. The fitted
radius moves that particle's edge: its outline is scaled to the fitted radius, within its own territory (pixels
nearer to it than to any other particle), and a one-pixel gap is kept where two grown
particles would meet, so the mask written by `--mask-out` holds exactly the measured
particles.

A particle whose profile cannot be fitted keeps the segmented edge, and says why:
too_small (under 5 px across), blurred (its radius under six times the frame's
blur, where the profile cannot tell a sphere from a flat top, and fewer than 20 of the
frame's particles were fitted to lend it their shape), cut (less than half of the ring
around it is its own: a neighbour, the border or the scale bar), noisy (its contrast too
low for its size), no_fit (the best profile lies at the end of the search or fits far
worse than noise), folded (its outline folds back as seen from its centre: no radius
per direction).

A blurred particle is fitted with the frame's shape when at least 20 larger particles
were fitted: the frame's evidence for what its small particles are. Without that,
particles of 8-20 px kept the mask edge and came out about 10 % small. The JSON counts
these particles as `shape_from_frame`.

Measured before choosing (the profiles of 40 flat-topped frames of pipeline.synth and
42 frames of spheres, ellipsoids, facets and rafts from two generators): with each
particle free to take its own shape and the blur chosen for that, 20 frames had d50 off
by more than 3 % (worst 12 %: small facets fitted as softer shapes under too small a
blur; flat-topped frames 4-8 % large); with one shape per frame, 7 (worst 11 %, small
facets of pipeline.synth now taken for clipped domes), every flat-topped frame within
2.8 %, and the sphere frames of 25-120 px unchanged.
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
MIN_CLIPPED = 50                              # pixels at one extreme value: a clip
# Where the blur is a sixth of the radius or more, the blurred profiles of a sphere
# and of a flat top differ by less than the noise, so the fit cannot say where the
# thickness meets the support: such a particle keeps the mask edge ("blurred"). Seen
# on the Pt/alumina tomogram slices (blur 2-2.8 px, radii about 6 px): without this
# rule the profile edge put the median diameter 8 % above the people's masks (IoU
# 0.727 -> 0.655 with starter-v4), with it at 4x blur 0.678, at 6x 0.694; spheres of
# 25-50 px under a 0.7-1.4 px probe keep their profile edge (d50 within 2.2 %).
MIN_RADIUS_PER_BLUR = 6.0
FRAME_SHAPE_FITS = 20     # fitted particles a frame needs before its shape is lent
# A particle takes the frame's shape unless its own profile fits another better by more
# than this many of its reduced chi-squares (pick_shapes). Measured on 40 flat-topped
# frames and 42 frames of spheres, ellipsoids, facets and rafts: 4 let noisy particles
# take shapes they are not, 16 and more gave the same sizes within 0.3 %.
SHAPE_EVIDENCE = 16.0
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
                    exclude: np.ndarray | None, outline: Outline | None = None,
                    censored: np.ndarray | None = None) -> Profiles:
    """Bin every particle's pixels (its own and the ring around it, out to a third of its
    radius plus 8 px) by their star radius (outline.star_radius: the segmented outline
    scaled to the particle's equivalent radius, so that ellipsoids and faceted crystals,
    whose thickness contours are scaled copies of their outline, give the profile of a
    round particle of their area), all particles at once (bincount). `censored` pixels
    (clipped by the detector, see clipped_pixels) count for the coverage but not in the
    profile: their value says only that the true one is beyond the clip."""
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
    seen = np.ones(where.size) if censored is None else (~censored.ravel()[where]).astype(np.float64)

    def acc(weights):
        return np.bincount(key, weights, minlength=size).reshape(n + 1, bins)[ids]

    w, sy, syy, sr = acc(seen), acc(val * seen), acc(val * val * seen), acc(rad * seen)
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


@dataclass
class ShapeFits:
    """Every particle's best radius under each profile shape: arrays (particles, shapes)."""
    chi2: np.ndarray
    factor: np.ndarray
    amp: np.ndarray
    coarse: np.ndarray      # the coarse search's factor (at an end of COARSE: no minimum)

    def take(self, shape: np.ndarray) -> tuple[np.ndarray, ...]:
        """(chi-square, factor, amplitude, coarse factor) of one shape per particle."""
        rows = np.arange(shape.size)
        return self.chi2[rows, shape], self.factor[rows, shape], self.amp[rows, shape], self.coarse[rows, shape]


def _best_factor(p: Profiles, sigma: float, factors: np.ndarray, shape: int) -> tuple[np.ndarray, ...]:
    """For each particle the best (chi-square, factor, amplitude) of one shape over the
    candidate radius factors (n, m)."""
    n = p.ids.size
    best, fac, amp = np.full(n, np.inf), np.ones(n), np.zeros(n)
    var = p.noise ** 2
    for j in range(factors.shape[1]):
        radius = p.radius * factors[:, j]
        a, _, ssr = _linear(profile(p.r, radius[:, None], sigma, shape), p.y, p.w)
        chi2 = np.where(a > 0, ssr / var, np.inf)
        better = chi2 < best
        best[better], fac[better], amp[better] = chi2[better], factors[better, j], a[better]
    return best, fac, amp


def fit_each_shape(p: Profiles, sigma: float) -> ShapeFits:
    """Per shape, a coarse search of every particle's radius, then a fine one around it."""
    n, m = p.ids.size, len(SHAPES)
    out = ShapeFits(np.full((n, m), np.inf), np.ones((n, m)), np.zeros((n, m)), np.ones((n, m)))
    coarse = np.broadcast_to(COARSE, (n, COARSE.size))
    for shape in range(m):
        _, first, _ = _best_factor(p, sigma, coarse, shape)
        chi2, fac, amp = _best_factor(p, sigma, first[:, None] + FINE[None, :], shape)
        out.chi2[:, shape], out.factor[:, shape], out.amp[:, shape], out.coarse[:, shape] = chi2, fac, amp, first
    return out


def _rows(p: Profiles, rows: np.ndarray) -> Profiles:
    return Profiles(p.ids[rows], p.radius[rows], p.r[rows], p.y[rows], p.w[rows], p.noise[rows], p.coverage[rows])


def choose_blur_and_shape(p: Profiles, usable: np.ndarray) -> tuple[float, int]:
    """The probe blur and the one profile shape that together fit the frame's particles
    best (the sum of their chi-squares), from a sample of particles across the sizes
    present: the blurs of SIGMAS_PX, then halfway (geometrically) to the best one's
    neighbours. Blur and shape are fitted together because, for a particle a few blurs
    across, a softer shape under a smaller blur fits as well as a sharper one under a
    larger blur, and their edges differ by up to 10 %: with each particle free to choose
    its shape, the frame's blur came out too small and flat-topped particles 4-8 % too
    large; one shape for the frame lets the sizes present tell the blur from the shape."""
    rows = np.flatnonzero(usable & (p.radius >= 4.0))
    if rows.size < 3:
        return DEFAULT_SIGMA_PX, 0
    rows = rows[np.argsort(p.radius[rows])]
    sub = _rows(p, rows[np.linspace(0, rows.size - 1, min(rows.size, SIGMA_SAMPLE)).astype(int)])

    def total(sigma: float) -> np.ndarray:     # per shape
        return np.minimum(fit_each_shape(sub, sigma).chi2, 1e6).sum(0)

    tried = {s: total(s) for s in SIGMAS_PX}
    i = SIGMAS_PX.index(min(tried, key=lambda s: tried[s].min()))
    for j in (i - 1, i + 1):
        if 0 <= j < len(SIGMAS_PX):
            mid = float(np.sqrt(SIGMAS_PX[i] * SIGMAS_PX[j]))
            tried[mid] = total(mid)
    sigma = min(tried, key=lambda s: tried[s].min())
    return round(float(sigma), 3), int(np.argmin(tried[sigma]))


def pick_shapes(fits: ShapeFits, frame_shape: int, bins: np.ndarray) -> np.ndarray:
    """Each particle's shape: the frame's, unless its own profile fits another shape
    better by more than SHAPE_EVIDENCE of its reduced chi-squares (so that support
    texture and correlated noise do not count as evidence of a shape)."""
    own = np.argmin(fits.chi2, 1)
    best = fits.chi2[np.arange(own.size), own]
    scale = np.maximum(best / np.maximum(bins, 1), 1.0)
    with np.errstate(invalid="ignore"):
        frame_fits = fits.chi2[:, frame_shape] - best <= SHAPE_EVIDENCE * scale
    return np.where(frame_fits, frame_shape, own)


def fit_profiles(p: Profiles, why: np.ndarray) -> tuple[float, int, np.ndarray, np.ndarray, np.ndarray]:
    """Fit the rows whose `why` is still "" (filled in place for those that cannot be):
    (blur, the frame's shape, factor and shape per row, the rows under
    MIN_RADIUS_PER_BLUR blurs that were fitted with the frame's shape)."""
    sigma, frame_shape = choose_blur_and_shape(p, why == "")
    fits = fit_each_shape(p, sigma)
    bins = (p.w > 0).sum(1)
    blurred = p.radius < MIN_RADIUS_PER_BLUR * sigma
    shp = np.where(blurred, frame_shape, pick_shapes(fits, frame_shape, bins))
    chi2, fac, amp, first = fits.take(shp)
    snr = amp / p.noise * np.sqrt(2 * np.pi * p.radius)
    ends = (first <= COARSE[0] + 1e-6) | (first >= COARSE[-1] - 1e-6)
    bad_fit = ends | ~np.isfinite(chi2) | (chi2 > MAX_CHI2 * bins)
    why[(why == "") & (snr < MIN_SNR)] = "noisy"
    why[(why == "") & ~blurred & bad_fit] = "no_fit"
    lend = ((why == "") & ~blurred).sum() >= FRAME_SHAPE_FITS
    why[(why == "") & blurred & (bad_fit | (not lend))] = "blurred"
    return sigma, frame_shape, fac, shp, np.flatnonzero((why == "") & blurred)


def fit_edges(image: np.ndarray, labels: np.ndarray, s: np.ndarray, nearest: np.ndarray,
              exclude: np.ndarray | None = None, outline: Outline | None = None,
              censored: np.ndarray | None = None) -> EdgeFit:
    """Fit every label's profile; the labels that cannot be fitted keep factor 1."""
    n = int(labels.max())
    factor, shape, reason = np.ones(n + 1), np.full(n + 1, -1), np.full(n + 1, "", object)
    if n == 0:
        return EdgeFit(DEFAULT_SIGMA_PX, factor, shape, reason, {"profile": 0}, np.zeros(n + 1, bool))
    outline = outline or outlines(labels, s)
    p = gather_profiles(image, labels, s, nearest, exclude, outline, censored)
    why = np.full(p.ids.size, "", object)
    why[outline.folded[p.ids]] = "folded"
    why[p.coverage < MIN_COVERAGE] = "cut"
    why[p.radius < MIN_RADIUS_PX] = "too_small"
    sigma, _, fac, shp, lent = fit_profiles(p, why)
    ok = why == ""
    factor[p.ids[ok]], shape[p.ids[ok]], reason[p.ids] = fac[ok], shp[ok], why
    borrowed = np.zeros(n + 1, bool)
    borrowed[p.ids[lent]] = True
    kinds, counts = np.unique(why, return_counts=True)
    summary = {("profile" if k == "" else k): int(c) for k, c in zip(kinds, counts)}
    return EdgeFit(sigma, factor, shape, reason, summary, borrowed)


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


def clipped_pixels(image: np.ndarray) -> np.ndarray | None:
    """The pixels at the frame's highest or lowest value where at least MIN_CLIPPED share
    it: a detector's clip (particle cores saturated at white, a thin support at black).
    A saturated sphere looks flat-topped, and fitted as such its edge moved 10 % inward;
    a plateau of one value is not a profile, so these pixels are left out of the fit."""
    out = None
    for value in (image.max(), image.min()):
        at = image == value
        if np.count_nonzero(at) >= MIN_CLIPPED:
            out = at if out is None else out | at
    return out


def profile_edge(image: np.ndarray, mask: np.ndarray, exclude: np.ndarray | None,
                 watershed: bool = False) -> tuple[np.ndarray, EdgeFit]:
    """Every particle of a cleaned mask moved to its profile edge: the grown label
    image (0 = support) and the fit. Particles at the border are moved too, so the
    written mask is one convention throughout."""
    labels = label_particles(mask, exclude_border=False, watershed=watershed)
    s, nearest = signed_distance(labels > 0, labels)
    outline = outlines(labels, s)
    fit = fit_edges(np.asarray(image, np.float32), labels, s, nearest, exclude, outline,
                    clipped_pixels(image))
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
