"""Pathfinder images by the "snakes" procedure, written to the official layout (registers nothing).

An independent numpy implementation of the generator behind LRA's Pathfinder and Path-X
(drewlinsley/pathfinder, `snakes2.py`; procedure and settings in research/lra.md §3.5):

    per image:  label ~ U{0,1}, paddle margin ~ U(margins)
      1. two target snakes of `contour_length` paddles; their first paddles' tails lie
         `seed_distance` px apart near the centre (at least 2*seed_distance from every edge)
      2. `n_distractors` distractor snakes of `distractor_length` paddles, anywhere
      3. single-paddle distractors until `total paddles` or until < 1% of the canvas is free
      4. a marker disc on the first tail of snake o (random); a second one on the last head
         of snake o (label 1) or of the other snake (label 0)
      5. image = max of all layers, min-max scaled to 0..255 (as the original's image writer)

A paddle is a short anti-aliased line: drawn `antialias`x larger (PIL line of width
round(thickness*antialias)), Lanczos-downsampled, times its contrast. Its occupancy mask is the
same line dilated by a disc of radius margin*antialias, downsampled the same way. A snake grows
by sampling the next head on a circle of radius paddle_length+margin around a pivot placed
paddle_length+2*margin ahead, with weight (1 - dilated occupancy) * max(cos(min(|dtheta| *
continuity, pi/2)), 0)^2; a paddle whose mask would overlap (mask + new >= 1.8) is resampled (at
most max_paddle_retrial+1 times), else the snake fails (a target failure restarts the image).
The gap of ~2*margin px between consecutive paddles is what makes contours dashed.

Where the reference differs from a clean reading of the procedure we follow the reference, so the
data has the benchmark's distribution (`quirks=True`; `False` gives the clean variant):
  - seed positions are tested against the paddle's saturated mask shifted by (+1, +1) and clipped
    to a (2(L+m)+1)^2 window (its dilation kernel's anchor is off by one); this lets seeds touch
    the top/left border and keeps them one pixel further from the bottom/right border;
  - after the two target snakes, only the second snake's last paddle is added to the occupancy
    mask, so distractors may overlap the first snake's last paddle.

Speed (why this is ~100x faster than the reference at 32x32): paddle sprites depend only on the
orientation, so they are rendered once per process and stamped; the occupancy is kept as a
padded boolean map updated in place; seed positions are drawn by rejection sampling (uniform
candidates until one has a free footprint, then an exact scan), which is uniform over the free
positions exactly like the reference's full dilation; an orientation found with no free
position is remembered as dead (occupancy only grows); the single-paddle phase stops as soon as
no attempt can succeed. Images are independent given (seed, index), so any number of worker
processes produce identical bytes.

    python -m lra_wavelet.data.snakes --out DIR --size 32 --total 1000   # official layout in DIR
    python -m lra_wavelet.data.snakes --figure results/figures/pathfinder_samples.png
"""

from __future__ import annotations

import math
import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image, ImageDraw

DIFFICULTIES = {"easy": 6, "intermediate": 9, "hard": 14}  # contour_length per difficulty
DIFFICULTY_DIRS = {"easy": "curv_baseline", "intermediate": "curv_contour_length_9", "hard": "curv_contour_length_14"}
BATCH = 1000  # images per imgs/<k>/ folder and metadata/<k>.npy file, as in the released archive


@dataclass(frozen=True)
class SnakeParams:
    """Generator settings; `lra_params(size)` gives the benchmark's."""

    size: int = 32
    padding: int = 1
    antialias: int = 2
    margins: tuple = (1,)
    paddle_length: int = 2
    thickness: float = 0.5
    marker_radius: float = 1.5
    seed_distance: int = 7
    contour_length: int = 14
    continuity: float = 1.0
    distractor_length: int = 4
    n_distractors: int = 5
    snake_contrast: float = 2.0
    paddle_contrast: float = 0.75
    single_paddles: bool = True
    max_paddle_retrial: int = 2
    max_distractor_retrial: int = 4
    quirks: bool = True

    def total_paddles(self, margin: int) -> int:
        """Paddle budget of an image: int(150 / ((7.5 + 13m + 4m^2) / 123.5))."""
        return int(150 * (1.0 / ((7.5 + 13 * margin + 4 * margin * margin) / 123.5)))


# The LRA TFDS docstrings' overrides of drewlinsley/pathfinder's defaults (research/lra.md §3.5).
# Path-X: 128 px. `distractor_length = contour_length / 3` and `num_distractor_snakes = K /
# distractor_length` are Python-2 integer divisions.
_LRA = {
    32: dict(padding=1, antialias=2, margins=(1,), paddle_length=2, thickness=0.5, marker_radius=1.5,
             seed_distance=7, continuity=1.0, snake_contrast=2.0, paddle_contrast=0.75, k=20),
    64: dict(padding=1, antialias=2, margins=(1,), paddle_length=5, thickness=1.0, marker_radius=2.5,
             seed_distance=12, continuity=1.8, snake_contrast=0.8, paddle_contrast=1.0, k=22),
    128: dict(padding=1, antialias=2, margins=(2, 3), paddle_length=5, thickness=1.5, marker_radius=3.0,
              seed_distance=20, continuity=1.8, snake_contrast=0.9, paddle_contrast=1.0, k=35),
}


def lra_params(size: int = 32, contour_length: int = 14, **overrides) -> SnakeParams:
    """The benchmark's settings for a resolution (32, 64 or 128) and contour length (6, 9, 14)."""
    if size not in _LRA:
        raise ValueError(f"no LRA settings for size {size}; known: {sorted(_LRA)}")
    s = dict(_LRA[size])
    k = s.pop("k")
    dl = contour_length // 3
    p = SnakeParams(size=size, contour_length=contour_length, distractor_length=dl, n_distractors=k // dl, **s)
    return replace(p, **overrides)


# ----------------------------------------------------------------------------- geometry
#
# Coordinates: the canvas is padded by `pad` px on every side and addressed by flat index
# f = (y + pad) * wp + (x + pad). The occupancy mask is uint8 (the reference's float mask x 255,
# exact since every mask value is a uint8 Lanczos output / 255): "occupied" is v > 0.3 * 255, i.e.
# v >= 77; "overlap" is a + b >= 1.8 * 255 = 459. The padding band outside the image is 255 so a
# candidate there has weight 0; stamps are not clipped (max with 255 leaves the band as it is).
#
# Orientation tags: tag 0..359 is a seed paddle at (tag - 180) degrees, drawn from its tail;
# tag 360 + k is an extension paddle towards candidate k, drawn from its head back to the pivot.

OCC = 77  # uint8 mask value from which a pixel is occupied (> 0.3)
OVERLAP = 459  # a + b >= 1.8 * 255: a new paddle overlaps


def _disc(r: float) -> np.ndarray:
    ri = int(math.floor(r))
    y, x = np.ogrid[-ri:ri + 1, -ri:ri + 1]
    return x * x + y * y <= r * r


def _flip(theta: float) -> float:
    return theta + math.pi if theta < 0 else theta - math.pi


class _Kit:
    """Everything that depends only on (params, margin), built once per process: sprites per
    orientation tag, weight table, offsets, footprints, the first seed's admissible tails."""

    def __init__(self, p: SnakeParams, margin: int):
        if p.padding < 1:
            raise ValueError("padding must be >= 1")
        if round(p.thickness * p.antialias) != p.thickness * p.antialias:
            raise ValueError(f"thickness {p.thickness} x antialias {p.antialias} must be an integer")
        self.p, self.m = p, margin
        L, m, n = p.paddle_length, margin, p.size
        self.n = n
        self.h = h = L + math.ceil(p.thickness) + m  # sprites are (2h+1)^2, centred on their anchor
        self.pad = pad = max(h, L + 3 * m + 1) + 3
        self.wp = wp = n + 2 * pad
        self.wp2 = wp * wp
        self.batch = 32 if n <= 32 else 64  # target-snake attempts grown side by side

        # extension candidates: integer pixels on a circle of radius L+m around the pivot
        r = L + m
        ang = np.arange(0, 360, 360.0 / (2 * r * math.pi)) * math.pi / 180
        off = np.unique(np.stack([np.floor(r * np.sin(ang)), np.floor(r * np.cos(ang))], 1).astype(np.int64), axis=0)
        self.K = len(off)
        self.ext_flat = off[:, 0] * wp + off[:, 1]
        ext_theta = [math.atan2(int(dy), int(dx)) for dy, dx in off]
        d = np.argwhere(_disc(m)) - m
        self.ext_disc = self.ext_flat[:, None] + (d[:, 0] * wp + d[:, 1])[None, :]  # (K, D)

        # per tag: direction of travel, pivot advance, weights of the next candidate, sprites
        theta = [(t - 180) * math.pi / 180 for t in range(360)] + ext_theta
        draw = theta[:360] + [_flip(t) for t in ext_theta]
        T = len(theta)
        adv = L + 2 * m
        self.adv_y = np.array([adv * math.sin(t) for t in theta])
        self.adv_x = np.array([adv * math.cos(t) for t in theta])
        W = np.empty((T, self.K))
        for i, t in enumerate(theta):
            for k, c in enumerate(ext_theta):
                dd = abs(c - t)
                dd = min(dd, 2 * math.pi - dd)
                W[i, k] = max(math.cos(min(dd * p.continuity, 0.5 * math.pi)), 0.0) ** 2 / 255.0
        self.W = W
        lines, masks = zip(*(self._render(t) for t in draw))
        self.line = np.stack(lines)  # (T, S, S) float in [0, 1]
        self.mask = np.stack(masks)  # (T, S, S) uint8
        self.mask_flat = self.mask.reshape(T, -1)
        yy, xx = np.mgrid[-h:h + 1, -h:h + 1]
        self.spr_off = (yy * wp + xx).ravel()

        # seed geometry (integer-degree tags): head = ceil(tail + L*dir), pivot = ceil(head - (L+m)*dir)
        self.seed_hy = np.array([L * math.sin(t) for t in theta[:360]])
        self.seed_hx = np.array([L * math.cos(t) for t in theta[:360]])
        self.seed_py = np.array([(L + m) * math.sin(_flip(t)) for t in theta[:360]])
        self.seed_px = np.array([(L + m) * math.cos(_flip(t)) for t in theta[:360]])
        sd = p.seed_distance
        self.sd_y = np.array([sd * math.sin(a * math.pi / 180) for a in range(360)])
        self.sd_x = np.array([sd * math.cos(a * math.pi / 180) for a in range(360)])

        # canvas templates
        inimg = np.zeros((wp, wp), bool)
        inimg[pad:pad + n, pad:pad + n] = True
        self.inimg = inimg.ravel()
        self.interior = np.flatnonzero(self.inimg)
        base = np.full((wp, wp), 255, np.uint8)
        pd = p.padding
        base[pad + pd:pad + n - pd, pad + pd:pad + n - pd] = 0
        self.base_mask = base.ravel()
        occ = np.ones((wp, wp), bool)  # seeds: outside and the image's 1-px border are taken
        occ[pad + 1:pad + n - 1, pad + 1:pad + n - 1] = False
        self.base_occ = occ.ravel() | (self.base_mask >= OCC)

        # seed footprints: the saturated part of the paddle's mask (the reference's dilation kernel)
        fps: dict[bytes, int] = {}
        self.fps: list[np.ndarray] = []
        self.fp_id = np.empty(360, np.int64)
        for t in range(360):
            dd = np.argwhere(self.mask[t] == 255) - h  # offsets from the tail
            if p.quirks:
                lim = L + m
                dd = dd[(dd >= -(lim + 1)).all(1) & (dd <= lim - 1).all(1)] + 1
            if len(dd) == 0:
                dd = np.zeros((1, 2), np.int64)
            f = np.sort(dd[:, 0] * wp + dd[:, 1])
            key = f.tobytes()
            if key not in fps:
                fps[key] = len(self.fps)
                self.fps.append(f)
            self.fp_id[t] = fps[key]

        # the first target seed: tails at least 2*seed_distance from every edge, footprint free
        band = self.base_occ.reshape(wp, wp).copy()
        s2 = 2 * sd
        band[pad:pad + s2, :] = band[pad + n - s2:pad + n, :] = True
        band[:, pad:pad + s2] = band[:, pad + n - s2:pad + n] = True
        band = band.ravel()
        free = np.flatnonzero(~band)
        tails = []
        for t in range(360):
            fp = self.fps[self.fp_id[t]]
            c = free - fp[0]
            c = c[self.inimg[c]]
            tails.append(np.sort(c[~band[c[:, None] + fp[None, :]].any(1)]))
        self.band_count = np.array([len(c) for c in tails])
        self.band_tails = np.zeros((360, max(1, self.band_count.max())), np.int64)
        for t, c in enumerate(tails):
            self.band_tails[t, :len(c)] = c

    def _render(self, theta: float) -> tuple[np.ndarray, np.ndarray]:
        """(line, mask) of a paddle leaving the sprite centre along `theta`: drawn `antialias`x
        larger, Lanczos-downsampled (line / 255 as float; mask as uint8)."""
        p, aa, h = self.p, self.p.antialias, self.h
        big, c, small = 2 * h * aa + 1, h * aa, 2 * h + 1
        hy = math.ceil(c + p.paddle_length * aa * math.sin(theta))
        hx = math.ceil(c + p.paddle_length * aa * math.cos(theta))
        im = Image.new("L", (big, big), 0)
        ImageDraw.Draw(im).line([(c, c), (hx, hy)], fill=255, width=int(round(p.thickness * aa)))
        line = np.asarray(im.resize((small, small), Image.LANCZOS), dtype=np.float64) / 255.0
        on = np.asarray(im) > 0
        k = _disc(self.m * aa)
        kr = k.shape[0] // 2
        dil = np.zeros((big + 2 * kr, big + 2 * kr), bool)
        for dy, dx in np.argwhere(k):  # binary dilation by the disc (outside counts as empty)
            dil[dy:dy + big, dx:dx + big] |= on
        dil = dil[kr:kr + big, kr:kr + big]
        mask = np.asarray(Image.fromarray(dil.astype(np.uint8) * 255).resize((small, small), Image.LANCZOS))
        return line, mask.astype(np.uint8)

    def yx(self, f):
        return f // self.wp - self.pad, f % self.wp - self.pad


@lru_cache(maxsize=16)
def _kit(p: SnakeParams, margin: int) -> _Kit:
    return _Kit(p, margin)


# ----------------------------------------------------------------------------- growing snakes


def _extend(kit: _Kit, mflat: np.ndarray, rows, tag, py, px, pend_tag, pend_flat, u3):
    """One more paddle for each snake i (vectorised over snakes; row i of the stacked masks).

    The pivot moves L+2m along the current direction; the new head is drawn from the candidates
    with weight (1 - dilated occupancy) * continuity weight; a head whose paddle would overlap the
    occupancy is redrawn (at most max_paddle_retrial+1 draws, uniforms u3[:, t]). The snake's
    previous paddle (`pend_*`) joins the occupancy only now, as in the reference.
    Returns (ok mask, and for the ok snakes: new tag, pivot y, pivot x, head flat)."""
    pad, wp, K = kit.pad, kit.wp, kit.K
    npy = np.ceil(py + kit.adv_y[tag]).astype(np.int64)
    npx = np.ceil(px + kit.adv_x[tag]).astype(np.int64)
    base = (npy + pad) * wp + (npx + pad)
    off = rows * kit.wp2
    dil = mflat[(off + base)[:, None, None] + kit.ext_disc[None]].max(2)  # (R, K)
    cmf = np.cumsum((255.0 - dil) * kit.W[tag], axis=1)
    tot = cmf[:, -1]
    choice = np.full(len(rows), -1)
    live = tot >= 1e-4
    for t in range(kit.p.max_paddle_retrial + 1):
        todo = np.flatnonzero(live & (choice < 0))
        if todo.size == 0:
            break
        i = np.minimum((cmf[todo] <= (u3[todo, t] * tot[todo])[:, None]).sum(1), K - 1)
        win = (base[todo] + kit.ext_flat[i])[:, None] + kit.spr_off[None, :]
        s = mflat[off[todo][:, None] + win].astype(np.int16) + kit.mask_flat[360 + i]
        s *= kit.inimg[win]  # the reference compares inside the image only
        good = s.max(1) < OVERLAP
        choice[todo[good]] = i[good]
    ok = choice >= 0
    j = np.flatnonzero(ok)
    w = (off[j] + pend_flat[j])[:, None] + kit.spr_off[None, :]
    mflat[w] = np.maximum(mflat[w], kit.mask_flat[pend_tag[j]])
    i = choice[j]
    return ok, 360 + i, npy[j], npx[j], base[j] + kit.ext_flat[i]


def _target_batch(kit: _Kit, rng: np.random.Generator) -> Optional[dict]:
    """Grow `kit.batch` independent attempts at the two target snakes side by side; return the
    first complete one (attempts are i.i.d., so this is the reference's resample-until-success)."""
    p, n, wp, pad, B = kit.p, kit.n, kit.wp, kit.pad, kit.batch
    CL, R = p.contour_length, p.max_paddle_retrial + 1
    r = rng.random((B, 4 * R))
    us = rng.random((B, CL - 1, 2, R))

    def seed_geometry(tag, ty, tx):
        hy = np.ceil(ty + kit.seed_hy[tag]).astype(np.int64)
        hx = np.ceil(tx + kit.seed_hx[tag]).astype(np.int64)
        py = np.ceil(hy + kit.seed_py[tag]).astype(np.int64)
        px = np.ceil(hx + kit.seed_px[tag]).astype(np.int64)
        inside = (hy >= 0) & (hy < n) & (hx >= 0) & (hx < n) & (py >= 0) & (py < n) & (px >= 0) & (px < n)
        return py, px, inside

    tag = np.zeros((B, 2), np.int64)
    tail = np.zeros((B, 2), np.int64)
    piv_y = np.zeros((B, 2), np.int64)
    piv_x = np.zeros((B, 2), np.int64)
    ok = np.ones(B, bool)
    for s in (0, 1):
        pending = ok.copy()
        for t in range(R):
            tg = np.minimum((r[:, 4 * t + 2 * s] * 360).astype(np.int64), 359)
            if s == 0:  # uniform among the admissible tails near the centre
                cnt = kit.band_count[tg]
                empty = pending & (cnt == 0)
                ok &= ~empty
                pending &= ~empty
                pick = np.minimum((r[:, 4 * t + 1] * cnt).astype(np.int64), np.maximum(cnt - 1, 0))
                tl = kit.band_tails[tg, pick]
                ty, tx = kit.yx(tl)
            else:  # seed_distance away from the first tail, in a random integer-degree direction
                a = np.minimum((r[:, 4 * t + 3] * 360).astype(np.int64), 359)
                ay, ax = kit.yx(tail[:, 0])
                ty = np.round(ay + kit.sd_y[a]).astype(np.int64)
                tx = np.round(ax + kit.sd_x[a]).astype(np.int64)
                tl = (ty + pad) * wp + tx + pad
            py, px, inside = seed_geometry(tg, ty, tx)
            take = pending & inside
            tag[take, s], tail[take, s], piv_y[take, s], piv_x[take, s] = tg[take], tl[take], py[take], px[take]
            pending &= ~take
        ok &= ~pending

    masks = np.tile(kit.base_mask, B)
    hist_tag = np.zeros((B, 2, CL), np.int64)
    hist_flat = np.zeros((B, 2, CL), np.int64)
    hist_tag[:, :, 0], hist_flat[:, :, 0] = tag, tail
    pend_flat = tail.copy()
    alive = np.flatnonzero(ok)
    for j in range(1, CL):
        for s in (0, 1):
            if alive.size == 0:
                return None
            good, nt, ny, nx, hf = _extend(kit, masks, alive, tag[alive, s], piv_y[alive, s], piv_x[alive, s],
                                           tag[alive, s], pend_flat[alive, s], us[alive, j - 1, s])
            alive = alive[good]
            tag[alive, s], piv_y[alive, s], piv_x[alive, s], pend_flat[alive, s] = nt, ny, nx, hf
            hist_tag[alive, s, j], hist_flat[alive, s, j] = nt, hf
    if alive.size == 0:
        return None
    w = alive[0]
    mask = masks[w * kit.wp2:(w + 1) * kit.wp2].copy()
    last = (1,) if p.quirks else (0, 1)  # the reference adds only the second snake's last paddle
    for s in last:
        win = pend_flat[w, s] + kit.spr_off
        mask[win] = np.maximum(mask[win], kit.mask_flat[tag[w, s]])
    return {"mask": mask, "tag": hist_tag[w], "flat": hist_flat[w]}


class _Uniforms:
    """Scalar uniforms from a numpy Generator, drawn in blocks (scalar calls are slow)."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.buf, self.i = rng, [], 0

    def __call__(self) -> float:
        if self.i >= len(self.buf):
            self.buf, self.i = self.rng.random(256).tolist(), 0
        self.i += 1
        return self.buf[self.i - 1]

    def below(self, k: int) -> int:
        return min(int(self() * k), k - 1)


class _Canvas:
    """The distractor phases: one canvas, paddles added one at a time."""

    def __init__(self, kit: _Kit, mask: np.ndarray, u: _Uniforms, rng: np.random.Generator):
        self.k, self.u, self.rng = kit, u, rng
        self.mask = mask  # (wp*wp,) uint8; always updated in place (mask2 is a view)
        self.mask2 = mask.reshape(kit.wp, kit.wp)
        self.occ = kit.base_occ | (mask >= OCC)
        self.occ2 = self.occ.reshape(kit.wp, kit.wp)
        self.n_free = int((mask[kit.interior] < OCC).sum())
        self.min_free = 0.01 * kit.n * kit.n
        self.rest = np.zeros((kit.wp, kit.wp))  # distractor layer (padded)
        self.witness: list[Optional[np.ndarray]] = [None] * len(kit.fps)  # superset of free tails per footprint
        self.dead: set[int] = set()
        self.cand_u = rng.random((64, 24))  # uniforms for candidate tails, refilled when used up
        self.cand_i = 0

    def exhausted(self) -> bool:
        """No seed can succeed any more: < 1% of the canvas free, or no footprint fits anywhere."""
        return self.n_free < self.min_free or len(self.dead) == len(self.k.fps)

    def _window(self, f: int):
        h = self.k.h
        y, x = divmod(f, self.k.wp)
        return slice(y - h, y + h + 1), slice(x - h, x + h + 1)

    def _stamp_mask(self, tag: int, f: int) -> None:
        sl = self._window(f)
        m = self.mask2[sl]
        np.maximum(m, self.k.mask[tag], out=m)
        self._occupy(sl)

    def _occupy(self, sl) -> None:
        o = self.occ2[sl]
        new = self.mask2[sl] >= OCC
        new &= ~o
        self.n_free -= int(np.count_nonzero(new))
        o |= new

    def _stamp_line(self, tag: int, f: int, contrast: float) -> None:
        r = self.rest[self._window(f)]
        np.maximum(r, contrast * self.k.line[tag], out=r)

    def free_tail(self, tag: int) -> Optional[int]:
        """A tail drawn uniformly from those whose footprint is free, or None (the footprint is dead).

        Uniform candidates from a superset of the free tails are tried first (the first free one
        is uniform over the free ones); if none is free, the superset is filtered exactly and kept
        as the new superset (occupancy only grows)."""
        k = self.k
        fid = int(k.fp_id[tag])
        if fid in self.dead:
            return None
        fp = k.fps[fid]
        pool = self.witness[fid]
        if pool is None:
            pool = k.interior
        if self.cand_i == len(self.cand_u):
            self.cand_u, self.cand_i = self.rng.random((64, 24)), 0
        cand = pool[(self.cand_u[self.cand_i] * len(pool)).astype(np.intp)]
        self.cand_i += 1
        taken = self.occ[cand[:, None] + fp].any(1)
        i = int(taken.argmin())
        if not taken[i]:
            return int(cand[i])
        if self.witness[fid] is None:  # every free tail t has t + fp[0] free
            pool = np.flatnonzero(~self.occ) - fp[0]
            pool = pool[k.inimg[pool]]
        pool = pool[~self.occ[pool[:, None] + fp].any(1)]
        self.witness[fid] = pool
        if len(pool) == 0:
            self.dead.add(fid)
            return None
        return int(pool[self.u.below(len(pool))])

    def seed(self, first_tag: Optional[int] = None):
        """A first paddle (tag, tail flat, pivot y, pivot x), or None (this snake fails)."""
        k = self.k
        for trial in range(k.p.max_paddle_retrial + 1):
            tag = first_tag if trial == 0 and first_tag is not None else self.u.below(360)
            if self.n_free < self.min_free:
                return None
            f = self.free_tail(tag)
            if f is None:
                return None
            ty, tx = k.yx(f)
            hy, hx = math.ceil(ty + k.seed_hy[tag]), math.ceil(tx + k.seed_hx[tag])
            py, px = math.ceil(hy + k.seed_py[tag]), math.ceil(hx + k.seed_px[tag])
            if 0 <= hy < k.n and 0 <= hx < k.n and 0 <= py < k.n and 0 <= px < k.n:
                return tag, f, py, px
        return None

    def snake(self, length: int, contrast: float, first_tag: Optional[int] = None) -> bool:
        """One distractor snake; on failure the canvas is left as it was."""
        s = self.seed(first_tag)
        if s is None:
            return False
        tag, f, py, px = s
        if length == 1:
            self._stamp_line(tag, f, contrast)
            self._stamp_mask(tag, f)
            return True
        k = self.k
        saved = self.mask.copy()
        paddles = [(tag, f)]
        one = np.zeros(1, np.int64)
        R = k.p.max_paddle_retrial + 1
        pend_tag, pend_f = tag, f
        for _ in range(length - 1):
            u3 = np.array([[self.u() for _ in range(R)]])
            good, nt, ny, nx, hf = _extend(k, self.mask, one, np.array([tag]), np.array([py]), np.array([px]),
                                           np.array([pend_tag]), np.array([pend_f]), u3)
            if not good[0]:
                np.copyto(self.mask, saved)
                return False
            tag, py, px, pend_tag, pend_f = int(nt[0]), int(ny[0]), int(nx[0]), int(nt[0]), int(hf[0])
            paddles.append((tag, pend_f))
        self._stamp_mask(pend_tag, pend_f)
        for t, pf in paddles:
            self._occupy(self._window(pf))
            self._stamp_line(t, pf, contrast)
        return True

    def fill(self, count: int, length: int, retries: int, contrast: float) -> None:
        """`count` snakes of `length` paddles, each tried up to retries+1 times (incomplete is fine)."""
        for _ in range(count):
            for _ in range(retries + 1):
                if self.exhausted():
                    return
                if self.snake(length, contrast):
                    break

    def fill_single(self, count: int, retries: int, contrast: float) -> None:
        """`fill(count, 1, ...)`, skipping the tries that cannot succeed without drawing them.

        A try whose orientation has a dead footprint fails without touching the canvas, so the
        number of such tries before the next useful one is geometric; we draw that number, then
        an orientation uniformly among the live ones - the same process, hundreds of times fewer
        steps once the canvas is nearly full."""
        k = self.k
        per = retries + 1
        left, used = count, 0  # paddles still to try; tries spent on the current one
        n_dead, live = -1, None
        while left > 0 and not self.exhausted():
            if len(self.dead) != n_dead:
                n_dead = len(self.dead)
                live = np.flatnonzero(~np.isin(k.fp_id, list(self.dead)))
            q = len(live) / 360.0
            skip = 0 if q >= 1.0 else int(math.log(1.0 - self.u()) / math.log(1.0 - q))
            used += skip
            left -= used // per
            used %= per
            if left <= 0:
                return
            if self.snake(1, contrast, first_tag=int(live[self.u.below(len(live))])):
                left, used = left - 1, 0
            else:
                used += 1
                if used == per:
                    left, used = left - 1, 0


# ----------------------------------------------------------------------------- one image


@dataclass
class Sample:
    """One generated image with the bookkeeping needed to check it."""

    image: np.ndarray  # (n, n) uint8
    label: int
    margin: int
    origin: int  # index of the target snake carrying the first marker
    tips: tuple  # ((y, x) first marker, (y, x) second marker)
    snakes: Optional[tuple] = None  # (layer A, layer B) float (n, n): the two target snakes alone
    ends: Optional[tuple] = None  # per target snake: ((y, x) first tail, (y, x) last head)
    rest: Optional[np.ndarray] = None  # the distractors' layer
    markers: Optional[np.ndarray] = None  # the two marker discs


def _marker(n: int, aa: int, yx: tuple, radius: float) -> np.ndarray:
    """Filled disc drawn aa-times larger at (y*aa, x*aa), Lanczos-downsampled; (n, n) in [0, 1].
    Only a window around the disc is resampled; farther away the full-image result is zero too."""
    out = np.zeros((n, n))
    y, x = yx
    r = int(math.ceil(radius)) + 8
    y0, y1, x0, x1 = max(y - r, 0), min(y + r + 1, n), max(x - r, 0), min(x + r + 1, n)
    yy, xx = np.ogrid[y0 * aa - y * aa:y1 * aa - y * aa, x0 * aa - x * aa:x1 * aa - x * aa]
    disc = ((xx * xx + yy * yy) <= (radius * aa) ** 2).astype(np.uint8) * 255
    small = Image.fromarray(disc).resize((x1 - x0, y1 - y0), Image.LANCZOS)
    out[y0:y1, x0:x1] = np.asarray(small, dtype=np.float64) / 255.0
    return out


def _bytescale(a: np.ndarray) -> np.ndarray:
    """Min-max to 0..255 with rounding, as the reference's image writer."""
    lo, hi = a.min(), a.max()
    scale = 255.0 / (hi - lo if hi > lo else 1.0)
    return (((a - lo) * scale).clip(0, 255) + 0.5).astype(np.uint8)


def render(p: SnakeParams, seed: int, index: int, keep_layers: bool = False) -> Sample:
    """Image `index` of the stream `seed`: a pure function of (p, seed, index)."""
    rng = np.random.default_rng([seed, index])
    u = _Uniforms(rng)
    label = int(u() < 0.5)
    margin = p.margins[u.below(len(p.margins))]
    kit = _kit(p, margin)
    tg = None
    while tg is None:  # the reference resamples the two target snakes until both are complete
        tg = _target_batch(kit, rng)
    cv = _Canvas(kit, tg["mask"], u, rng)
    cv.fill(p.n_distractors, p.distractor_length, p.max_distractor_retrial, p.snake_contrast)
    if p.single_paddles:
        n_single = p.total_paddles(margin) - 2 * p.contour_length - p.n_distractors * p.distractor_length
        cv.fill_single(n_single, p.max_paddle_retrial, p.snake_contrast)

    n, pad, wp, h = p.size, kit.pad, kit.wp, kit.h
    contrast = p.paddle_contrast * p.snake_contrast
    snakes = np.zeros((2, wp, wp))
    for s in (0, 1):
        for t, f in zip(tg["tag"][s], tg["flat"][s]):
            y, x = divmod(int(f), wp)
            w = snakes[s, y - h:y + h + 1, x - h:x + h + 1]
            np.maximum(w, contrast * kit.line[t], out=w)
    snakes = snakes[:, pad:pad + n, pad:pad + n]
    rest = cv.rest[pad:pad + n, pad:pad + n]
    ends = tuple((kit.yx(int(tg["flat"][s][0])), kit.yx(int(tg["flat"][s][-1]))) for s in (0, 1))
    origin = u.below(2)
    terminal = origin if label == 1 else 1 - origin
    tips = (ends[origin][0], ends[terminal][1])
    markers = np.maximum(_marker(n, p.antialias, tips[0], p.marker_radius),
                         _marker(n, p.antialias, tips[1], p.marker_radius))
    image = _bytescale(np.maximum(np.maximum(snakes.max(0), rest), markers))
    out = Sample(image=image, label=label, margin=margin, origin=origin, tips=tips)
    if keep_layers:
        out.snakes, out.ends, out.rest, out.markers = (snakes[0].copy(), snakes[1].copy()), ends, rest.copy(), markers
    return out


# ----------------------------------------------------------------------------- checking


def validate(s: Sample) -> list[str]:
    """Problems with one sample (empty list: it is what its label says).

    What "label 1 <=> the markers are joined by one contour" means here, and why it is checked
    on the generator's own per-snake layers rather than on the PNG: in the final image the gap
    between two paddles of one snake (~2*margin px) is by design no larger than the gap between
    a snake and a neighbouring distractor, so no image-only analysis can tell which paddles form
    a contour - that is exactly what the task asks a model to do. The generator therefore keeps
    each target snake's layer, and we check on them, independently of its label bookkeeping:
      1. each target snake, binarised and dilated by margin+1 px (closing its own gaps), is one
         connected component - a contour, not scattered paddles;
      2. the first marker sits on the first tail of snake `origin`, the second on the last head
         of snake `origin` (label 1) or of the other snake (label 0), and for label 0 it is not
         on snake `origin`'s contour at all;
      3. both markers are visible in the saved image (the brightest elements there);
      4. the saved image is exactly the min-max scaled max of the layers and markers.
    """
    from scipy import ndimage

    if s.snakes is None:
        return ["sample has no layers: render it with keep_layers=True"]
    problems = []
    comps = []
    k = ndimage.generate_binary_structure(2, 2)
    for i, layer in enumerate(s.snakes):
        on = layer > 0.25 * layer.max()
        on = ndimage.binary_dilation(on, _disc(s.margin + 1))
        lab, n = ndimage.label(on, structure=k)
        if n != 1:
            problems.append(f"target snake {i} is {n} pieces after closing gaps of {s.margin + 1} px")
        comps.append(lab)
    o = s.origin
    t = o if s.label == 1 else 1 - o
    if tuple(s.tips[0]) != tuple(s.ends[o][0]):
        problems.append(f"first marker {s.tips[0]} is not on the first tail of snake {o}")
    if tuple(s.tips[1]) != tuple(s.ends[t][1]):
        problems.append(f"second marker {s.tips[1]} is not on the last head of snake {t}")
    on_origin = [comps[o][y, x] > 0 for y, x in s.tips]
    if not on_origin[0]:
        problems.append("first marker is off its snake's contour")
    if s.label == 1 and not on_origin[1]:
        problems.append("label 1 but the second marker is off the first marker's contour")
    if s.label == 0 and on_origin[1]:
        problems.append("label 0 but the second marker lies on the first marker's contour")
    for y, x in s.tips:
        if s.image[y, x] < 0.6 * s.image.max():
            problems.append(f"marker at {(y, x)} is not visible (pixel {s.image[y, x]})")
    expect = _bytescale(np.maximum(np.maximum(np.maximum(s.snakes[0], s.snakes[1]), s.rest), s.markers))
    if not np.array_equal(expect, s.image):
        problems.append("the image is not the rendering of its layers")
    return problems


# ----------------------------------------------------------------------------- the official layout


def metadata_line(p: SnakeParams, batch: int, k: int, label: int, margin: int) -> str:
    """`imgs/<b> sample_<k>.png <k> <label> <continuity> <contour_length> <distractor_length>
    <paddle_length> <paddle_thickness> <paddle_margin> <n_paddle_contrasts>` (all 11 fields)."""
    return (f"imgs/{batch} sample_{k}.png {k} {label} {float(p.continuity)} {p.contour_length} "
            f"{p.distractor_length} {p.paddle_length} {float(p.thickness)} {margin} 1")


def _write_batch(job) -> int:
    """Render images [start, start+count) into imgs/<batch>/, then metadata/<batch>.npy (last,
    atomically: a metadata file means its batch is complete)."""
    p, root, batch, start, count, seed, compress = job
    root = Path(root)
    img_dir = root / "imgs" / str(batch)
    img_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for k in range(count):
        s = render(p, seed, start + k)
        Image.fromarray(s.image, "L").save(img_dir / f"sample_{k}.png", compress_level=compress)
        lines.append(metadata_line(p, batch, k, s.label, s.margin))
    meta = root / "metadata" / f"{batch}.npy"
    meta.parent.mkdir(parents=True, exist_ok=True)
    tmp = meta.with_name(f".{batch}.npy.tmp{os.getpid()}")
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, meta)
    return count


def write_dataset(root: Path, p: SnakeParams, total: int, seed: int = 0, workers: int = 0,
                  batch_size: int = BATCH, progress: bool = True, compress: int = 1) -> Path:
    """Generate `total` images into `root` in the official layout (resumable: complete batches,
    i.e. those with a metadata file, are kept). Same bytes for any `workers` (0: all cores)."""
    root = Path(root)
    jobs = []
    for b, start in enumerate(range(0, total, batch_size)):
        if not (root / "metadata" / f"{b}.npy").is_file():
            jobs.append((p, str(root), b, start, min(batch_size, total - start), seed, compress))
    workers = workers or os.cpu_count() or 1
    from tqdm import tqdm

    bar = tqdm(total=sum(j[4] for j in jobs), desc=f"generating pathfinder{p.size}", unit="img",
               disable=not progress or not jobs, leave=False)
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
            for n in pool.map(_write_batch, jobs):
                bar.update(n)
    else:
        for j in jobs:
            bar.update(_write_batch(j))
    bar.close()
    return root


def render_many(p: SnakeParams, seed: int, indices, workers: int = 1) -> list[Sample]:
    """Samples for `indices` (no files); workers > 1 uses a process pool, same result."""
    indices = list(indices)
    if workers <= 1:
        return [render(p, seed, i) for i in indices]
    chunks = [indices[i::workers] for i in range(workers)]
    with ProcessPoolExecutor(workers) as pool:
        parts = list(pool.map(_render_chunk, [(p, seed, c) for c in chunks]))
    out: dict[int, Sample] = {}
    for c, part in zip(chunks, parts):
        out.update(zip(c, part))
    return [out[i] for i in indices]


def _render_chunk(job) -> list[Sample]:
    p, seed, idx = job
    return [render(p, seed, i) for i in idx]


# ----------------------------------------------------------------------------- figure / CLI


def sample_figure(path: Path, seed: int = 0, per_cell: int = 4) -> Path:
    """A grid: rows = (32, label 0), (32, label 1), (128, label 0), (128, label 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = []
    for size in (32, 128):
        p = lra_params(size)
        got: dict[int, list[Sample]] = {0: [], 1: []}
        i = 0
        while min(len(v) for v in got.values()) < per_cell:
            s = render(p, seed, i)
            if len(got[s.label]) < per_cell:
                got[s.label].append(s)
            i += 1
        rows += [(size, lab, got[lab]) for lab in (0, 1)]
    fig, axes = plt.subplots(len(rows), per_cell, figsize=(2.2 * per_cell, 2.4 * len(rows)))
    for r, (size, lab, samples) in enumerate(rows):
        for c, s in enumerate(samples):
            ax = axes[r, c]
            ax.imshow(s.image, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            what = "connected" if lab else "not connected"
            ax.set_title(f"{size}x{size}, label {lab} ({what})", fontsize=7)
    fig.suptitle(f"Generated Pathfinder samples (LRA settings, hard: contour length 14; seed {seed})", fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main(argv=None) -> int:
    import argparse

    ap = argparse.ArgumentParser(prog="python -m lra_wavelet.data.snakes", description=__doc__.split("\n")[0])
    ap.add_argument("--figure", help="draw a grid of samples (32 and 128, both labels) to this PNG")
    ap.add_argument("--out", help="write a data set in the official layout under this directory")
    ap.add_argument("--size", type=int, default=32, choices=sorted(_LRA))
    ap.add_argument("--difficulty", default="hard", choices=list(DIFFICULTIES))
    ap.add_argument("--total", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--workers", type=int, default=0)
    a = ap.parse_args(argv)
    if not a.figure and not a.out:
        ap.error("give --figure PATH and/or --out DIR")
    if a.figure:
        print(sample_figure(Path(a.figure), seed=a.seed))
    if a.out:
        p = lra_params(a.size, DIFFICULTIES[a.difficulty])
        root = Path(a.out) / f"pathfinder{a.size}" / DIFFICULTY_DIRS[a.difficulty]
        print(write_dataset(root, p, a.total, seed=a.seed, workers=a.workers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
