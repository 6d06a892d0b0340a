"""Pathfinder images by the "snakes" procedure, written to the official layout (registers nothing).

An independent numpy implementation of the generator behind LRA's Pathfinder and Path-X
(drewlinsley/pathfinder, `snakes2.py`; procedure and settings in research/lra.md §3.5):

    per image:  label ~ U{0,1}, paddle margin ~ U(margins)
      1. two target snakes of `contour_length` paddles; their first paddles' tails lie
         `seed_distance` px apart near the centre (at least 2*seed_distance from every edge)
      2. `n_distractors` distractor snakes of `distractor_length` paddles, anywhere
      3. only with `single_paddles` (the benchmark's wrapper turns them off): single-paddle
         distractors until `total paddles` or until < 1% of the canvas is free
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
    mask, so distractors may overlap the first snake's last paddle;
  - the seed test finds no place at all for an orientation whose footprint leaves some pixel of
    the image with every offset outside it: the reference's dilation pads a float mask with the
    most negative float, and a negative value anywhere means "no free position" (`_usable`).
    Every seed but the second target snake's is tested so; at 32x32 only 30 of 360 orientations
    pass (95 at 64x64, 354-360 at 128x128), so the first target seed points up-left and most
    distractor snakes fail all their tries: the reference draws ~1.25 of 5 per image at 32x32.

Speed (~120x the reference's CPU time per image at 32x32, results/benchmarks/pathfinder.md)
without changing the procedure's distribution:
  - a paddle's sprites depend only on its orientation: rendered once per process, then stamped;
    the occupancy mask is uint8 (the reference's float mask x 255, exact) on a padded canvas;
  - the target snakes, resampled until both are complete (~30 attempts per image at 32x32, ~300
    at 128x128), are grown as batches of independent attempts side by side, for several images
    at once; the first complete attempt of each image is kept (= resample-until-success); an
    attempt whose first orientation is unusable fails before it draws anything else, so the
    first orientation is drawn among the usable ones only (the same first success);
  - a seed position is uniform over the positions whose footprint is free, as the reference's
    full dilation gives: we draw uniform candidates from a superset of them and take the first
    free one, filtering the superset exactly only when candidates keep failing; a footprint with
    no free position is dead for good (occupancy only grows), and runs of tries that can only
    fail are skipped by drawing their (geometric) number instead of each try.
Every image draws from its own generator seeded by (seed, index), in the same order however the
images are grouped, so any grouping and any number of worker processes give identical bytes.

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
    single_paddles: bool = False  # the benchmark's wrapper: use_single_paddles = False
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
        self.line_flat = self.line.reshape(T, -1)
        yy, xx = np.mgrid[-h:h + 1, -h:h + 1]
        self.spr_off = (yy * wp + xx).ravel()
        self.occ_max = int((self.mask >= OCC).sum((1, 2)).max())  # most pixels one paddle can occupy
        # per tag: the sprite's non-zero mask pixels (repeat-padded to a common width) for stamping
        nzs = [np.flatnonzero(mf) for mf in self.mask_flat]
        nmax = max(len(z) for z in nzs)
        self.nz_off = np.stack([self.spr_off[np.resize(z, nmax)] for z in nzs])
        self.nz_val = np.stack([self.mask_flat[t][np.resize(z, nmax)] for t, z in enumerate(nzs)])
        # per tag: the candidates with a non-zero continuity weight (padded, weight 0)
        nz = [np.flatnonzero(W[t] > 1e-12) for t in range(T)]  # cos(pi/2)^2 ~ 4e-33 counts as 0
        kmax = max(1, max(len(z) for z in nz))
        self.sel = np.zeros((T, kmax), np.int64)
        self.sel_w = np.zeros((T, kmax))
        for t, z in enumerate(nz):
            self.sel[t, :len(z)] = z
            self.sel_w[t, :len(z)] = W[t, z]
        self.sel_disc = self.ext_disc[self.sel]  # (T, Kmax, D)
        # per candidate: the pixels where its paddle's mask is >= OVERLAP - 255 (only those can overlap)
        cores = [np.flatnonzero(self.mask_flat[360 + k] >= OVERLAP - 255) for k in range(self.K)]
        cmax = max(1, max(len(c) for c in cores))
        self.core_off = np.zeros((self.K, cmax), np.int64)
        self.core_val = np.zeros((self.K, cmax), np.int16)
        for k, c in enumerate(cores):
            c = c if len(c) else np.zeros(1, np.int64)  # (value 0 at the centre: never overlaps)
            pad_c = np.resize(c, cmax)  # repeat entries to the common width
            self.core_off[k] = self.spr_off[pad_c]
            self.core_val[k] = self.mask_flat[360 + k][pad_c] if len(cores[k]) else 0

        # seed geometry (integer-degree tags): head = ceil(tail + L*dir), pivot = ceil(head - (L+m)*dir)
        self.seed_hy = np.array([L * math.sin(t) for t in theta[:360]])
        self.seed_hx = np.array([L * math.cos(t) for t in theta[:360]])
        self.seed_py = np.array([(L + m) * math.sin(_flip(t)) for t in theta[:360]])
        self.seed_px = np.array([(L + m) * math.cos(_flip(t)) for t in theta[:360]])
        sd = p.seed_distance
        self.hy_l, self.hx_l = self.seed_hy.tolist(), self.seed_hx.tolist()
        self.py_l, self.px_l = self.seed_py.tolist(), self.seed_px.tolist()
        self.sd_y = np.array([sd * math.sin(a * math.pi / 180) for a in range(360)])
        self.sd_x = np.array([sd * math.cos(a * math.pi / 180) for a in range(360)])

        # canvas templates
        inimg = np.zeros((wp, wp), bool)
        inimg[pad:pad + n, pad:pad + n] = True
        self.inimg = inimg.ravel()
        self.interior = np.flatnonzero(self.inimg)
        self.interior_list = self.interior.tolist()
        base = np.full((wp, wp), 255, np.uint8)
        pd = p.padding
        base[pad + pd:pad + n - pd, pad + pd:pad + n - pd] = 0
        self.base_mask = base.ravel()
        self.base_occ = self.base_mask >= OCC  # includes the image's 1-px border (padding >= 1)

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
        self.fp_of = self.fp_id.tolist()
        # A footprint that cannot reach the image from some pixel is unusable (see `_usable`).
        usable = [_usable(self._dydx(f), n) if p.quirks else True for f in self.fps]
        self.dead_fps = frozenset(i for i, ok in enumerate(usable) if not ok)
        self.usable_tags = np.array([usable[i] for i in self.fp_id])  # per seed orientation
        self.usable_list = np.flatnonzero(self.usable_tags)
        if not len(self.usable_list):
            raise ValueError(f"no seed orientation can be placed on a {n}x{n} image with these settings")
        self.fp_lists = [f.tolist() for f in self.fps]
        self.fp_stages = []
        for f in self.fps:
            fy, fx = (f + pad * wp + pad) // wp, (f + pad * wp + pad) % wp  # offsets as (dy, dx) + pad
            order = np.argsort(-((fy - fy[0]) ** 2 + (fx - fx[0]) ** 2), kind="stable")
            f = f[order]
            self.fp_stages.append([f[:3], f[3:]] if len(f) > 3 else [f])

        # the first target seed: tails at least 2*seed_distance from every edge, footprint free
        band = self.base_occ.reshape(wp, wp).copy()
        s2 = 2 * sd
        band[pad:pad + s2, :] = band[pad + n - s2:pad + n, :] = True
        band[:, pad:pad + s2] = band[:, pad + n - s2:pad + n] = True
        band = band.ravel()
        free = np.flatnonzero(~band)
        tails = []
        for t in range(360):
            if not self.usable_tags[t]:  # the first target seed's test dilates the same way
                tails.append(np.zeros(0, np.int64))
                continue
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

    def _dydx(self, f: np.ndarray) -> np.ndarray:
        """Flat offsets on the padded canvas as (dy, dx) rows."""
        g = f + self.pad * self.wp + self.pad
        return np.stack([g // self.wp - self.pad, g % self.wp - self.pad], 1)


def _usable(offsets: np.ndarray, n: int) -> bool:
    """Whether the reference's seed test can find any place for a footprint on an n x n image.

    The reference dilates its (float) occupancy mask by the footprint and looks for free pixels,
    but gives up (no free place) as soon as the dilated mask has a negative value anywhere. The
    dilation pads the image with the most negative float, so a pixel all of whose footprint
    offsets fall outside the image gets that value: e.g. every bottom-right corner pixel when no
    offset has dy <= 0 and dx <= 0. The occupancy does not matter, only whether every pixel q has
    some offset o with q + o inside. Measured on the reference's dilation (OpenCV, float input):
    at 32x32 only 30 of the 360 seed orientations pass, at 64x64 95, at 128x128 354 (margin 2)
    and 360 (margin 3)."""
    reach = np.zeros((n, n), bool)
    for dy, dx in offsets:
        reach[max(0, -dy):min(n, n - dy), max(0, -dx):min(n, n - dx)] = True
    return bool(reach.all())


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
    pad, wp = kit.pad, kit.wp
    npy = np.ceil(py + kit.adv_y[tag]).astype(np.int64)
    npx = np.ceil(px + kit.adv_x[tag]).astype(np.int64)
    base = (npy + pad) * wp + (npx + pad)
    off = rows * kit.wp2
    # only candidates with a non-zero continuity weight (kit.sel) need their dilated occupancy
    dil = mflat[(off + base)[:, None, None] + kit.sel_disc[tag]].max(2)  # (R, Kmax)
    cmf = np.cumsum((255.0 - dil) * kit.sel_w[tag], axis=1)
    tot = cmf[:, -1]
    choice = np.full(len(rows), -1)
    live = tot >= 1e-4
    last = cmf.shape[1] - 1
    for t in range(kit.p.max_paddle_retrial + 1):
        todo = np.flatnonzero(live & (choice < 0))
        if todo.size == 0:
            break
        k = kit.sel[tag[todo], np.minimum((cmf[todo] <= (u3[todo, t] * tot[todo])[:, None]).sum(1), last)]
        # overlap (mask + new >= 1.8) is only possible where the new paddle's mask is >= 204
        win = (base[todo] + kit.ext_flat[k])[:, None] + kit.core_off[k]
        s = mflat[off[todo][:, None] + win] + kit.core_val[k]
        good = ~((s >= OVERLAP) & kit.inimg[win]).any(1)  # the reference compares inside the image only
        choice[todo[good]] = k[good]
    ok = choice >= 0
    j = np.flatnonzero(ok)
    w = (off[j] + pend_flat[j])[:, None] + kit.nz_off[pend_tag[j]]
    mflat[w] = np.maximum(mflat[w], kit.nz_val[pend_tag[j]])
    k = choice[j]
    return ok, 360 + k, npy[j], npx[j], base[j] + kit.ext_flat[k]


def _target_batch(kit: _Kit, rngs: list) -> list:
    """For each image (one generator each), grow `kit.batch` independent attempts at its two
    target snakes, all images side by side; return per image its first complete attempt, or None
    (attempts are i.i.d., so this is the reference's resample-until-success). Each image draws
    its own numbers in a fixed pattern, so grouping images changes nothing in the result."""
    p, n, wp, pad, G = kit.p, kit.n, kit.wp, kit.pad, len(rngs)
    CL, R = p.contour_length, p.max_paddle_retrial + 1
    B = kit.batch * G  # rows: image g owns rows g*batch ... (g+1)*batch - 1
    r = np.concatenate([g.random((kit.batch, 4 * R)) for g in rngs])
    us = np.concatenate([g.random((kit.batch, CL - 1, 2, R)) for g in rngs])

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
            if s == 0 and t == 0:  # an unusable first orientation fails the attempt at once: skip those
                tg = kit.usable_list[np.minimum((r[:, 0] * len(kit.usable_list)).astype(np.int64),
                                                len(kit.usable_list) - 1)]
            else:
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
                return [None] * G
            good, nt, ny, nx, hf = _extend(kit, masks, alive, tag[alive, s], piv_y[alive, s], piv_x[alive, s],
                                           tag[alive, s], pend_flat[alive, s], us[alive, j - 1, s])
            alive = alive[good]
            tag[alive, s], piv_y[alive, s], piv_x[alive, s], pend_flat[alive, s] = nt, ny, nx, hf
            hist_tag[alive, s, j], hist_flat[alive, s, j] = nt, hf
    out: list = [None] * G
    for w in alive[::-1]:  # ascending rows: keep each image's first complete attempt
        out[w // kit.batch] = w
    for g, w in enumerate(out):
        if w is None:
            continue
        mask = masks[w * kit.wp2:(w + 1) * kit.wp2].copy()
        last = (1,) if p.quirks else (0, 1)  # the reference adds only the second snake's last paddle
        for s in last:
            win = pend_flat[w, s] + kit.spr_off
            mask[win] = np.maximum(mask[win], kit.mask_flat[tag[w, s]])
        out[g] = {"mask": mask, "tag": hist_tag[w], "flat": hist_flat[w]}
    return out


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
    """The distractor phases: one canvas, paddles added one at a time.

    With padding >= 1 the reference's seed rule "the image's 1-px border is taken" is already in
    the mask, so occupancy is simply mask >= OCC (outside the image the mask is 255)."""

    def __init__(self, kit: _Kit, mask: np.ndarray, u: _Uniforms, rng: np.random.Generator):
        self.k, self.u, self.rng = kit, u, rng
        self.mask = mask  # (wp*wp,) uint8; always updated in place (mask2, mv are views)
        self.mask2 = mask.reshape(kit.wp, kit.wp)
        self.mv = memoryview(mask)  # fast scalar reads
        self.min_free = 0.01 * kit.n * kit.n
        self.free_bound, self.since = self._count_free(), 0  # exact count, paddles stamped since
        self.placed: list = []  # (tag, flat) of every distractor paddle; drawn at the end
        self.witness: list[Optional[list]] = [None] * len(kit.fps)  # superset of free tails per footprint
        self.dead: set[int] = set(kit.dead_fps)  # footprints that fit nowhere (from the start: unusable)
        self.snakes = 0  # distractor snakes drawn

    def _count_free(self) -> int:
        return int(np.count_nonzero(self.mask[self.k.interior] < OCC))

    def too_full(self) -> bool:
        """< 1% of the image free (the reference's stop rule). Counted exactly only when a stamp
        since the last count could have brought it under the limit."""
        if self.free_bound - self.since * self.k.occ_max >= self.min_free:
            return False
        self.free_bound, self.since = self._count_free(), 0
        return self.free_bound < self.min_free

    def exhausted(self) -> bool:
        """No seed can succeed any more: too full, or no footprint fits anywhere."""
        return len(self.dead) == len(self.k.fps) or self.too_full()

    def _stamp(self, tag: int, f: int, mask: bool = True) -> None:
        """Add a distractor paddle: its mask now (it changes what fits), its line at the end."""
        self.placed.append((tag, f))
        if mask:
            k = self.k
            y, x = divmod(f, k.wp)
            m = self.mask2[y - k.h:y + k.h + 1, x - k.h:x + k.h + 1]
            np.maximum(m, k.mask[tag], out=m)
            self.since += 1

    def rest_layer(self, contrast: float) -> np.ndarray:
        """(wp, wp) max of all distractor paddles' lines x contrast."""
        k = self.k
        rest = np.zeros(k.wp2)
        if self.placed:
            tags, flats = np.array(self.placed).T
            np.maximum.at(rest, (flats[:, None] + k.spr_off).ravel(), (contrast * k.line_flat[tags]).ravel())
        return rest.reshape(k.wp, k.wp)

    def free_tail(self, tag: int) -> Optional[int]:
        """A tail drawn uniformly from those whose footprint is free, or None (the footprint is dead).

        Uniform candidates from a superset of the free tails are tried first, 8 one by one, then
        64 side by side when the superset is large (the first free one is uniform over the free
        ones); if none is free, the superset is filtered exactly and kept as the new superset
        (occupancy only grows)."""
        k = self.k
        fid = k.fp_of[tag]
        if fid in self.dead:
            return None
        pool = self.witness[fid]
        if pool is None:
            pool = k.interior_list
        mv, u, fpl, n_pool = self.mv, self.u, k.fp_lists[fid], len(pool)
        for _ in range(8):
            c = pool[min(int(u() * n_pool), n_pool - 1)]
            for o in fpl:
                if mv[c + o] >= OCC:
                    break
            else:
                return c
        fp = k.fps[fid]
        arr = k.interior if self.witness[fid] is None else np.array(pool)
        if n_pool > 2000:  # an exact filter would be slow: 64 more candidates, side by side
            cand = arr[(self.rng.random(64) * n_pool).astype(np.intp)]
            free = ~(self.mask[cand[:, None] + fp] >= OCC).any(1)
            if free.any():
                return int(cand[free.argmax()])
        if self.witness[fid] is None:  # every free tail t has t + fp[0] free
            cand = np.flatnonzero(self.mask < OCC) - fp[0]
            cand = cand[k.inimg[cand]]
        else:
            cand = arr
        for part in k.fp_stages[fid]:  # a few far-apart offsets first: later stages see few tails
            cand = cand[(self.mask[cand[:, None] + part] < OCC).all(1)]
        pool = self.witness[fid] = cand.tolist()
        if not pool:
            self.dead.add(fid)
            return None
        return pool[u.below(len(pool))]

    def seed(self, first_tag: Optional[int] = None):
        """A first paddle (tag, tail flat, pivot y, pivot x), or None (this snake fails)."""
        k = self.k
        for trial in range(k.p.max_paddle_retrial + 1):
            tag = first_tag if trial == 0 and first_tag is not None else self.u.below(360)
            if self.too_full():
                return None
            f = self.free_tail(tag)
            if f is None:
                return None
            ty, tx = divmod(f, k.wp)
            ty, tx = ty - k.pad, tx - k.pad
            hy, hx = math.ceil(ty + k.hy_l[tag]), math.ceil(tx + k.hx_l[tag])
            py, px = math.ceil(hy + k.py_l[tag]), math.ceil(hx + k.px_l[tag])
            if 0 <= hy < k.n and 0 <= hx < k.n and 0 <= py < k.n and 0 <= px < k.n:
                return tag, f, py, px
        return None

    def single(self, first_tag: Optional[int] = None) -> bool:
        """One single-paddle distractor; False if its seed fails."""
        sd = self.seed(first_tag)
        if sd is None:
            return False
        self._stamp(sd[0], sd[1])
        return True

    def fill_single(self, count: int, retries: int) -> None:
        """`count` single paddles, each tried up to retries+1 times, skipping the tries that cannot
        succeed without drawing them.

        A try whose orientation has a dead footprint fails without touching the canvas, so the
        number of such tries before the next useful one is geometric; we draw that number, then
        an orientation uniformly among the live ones - the same process, hundreds of times fewer
        steps once the canvas is nearly full."""
        k = self.k
        per = retries + 1
        left, used = count, 0  # paddles still to try; tries spent on the current one
        n_dead, live = -1, []
        while left > 0 and not self.exhausted():
            if len(self.dead) != n_dead:
                n_dead = len(self.dead)
                alive_fp = np.ones(len(k.fps), bool)
                alive_fp[list(self.dead)] = False
                live = np.flatnonzero(alive_fp[k.fp_id]).tolist()
            q = len(live) / 360.0
            skip = 0 if q >= 1.0 else int(math.log(1.0 - self.u()) / math.log(1.0 - q))
            used += skip
            left -= used // per
            used %= per
            if left <= 0:
                return
            if self.single(first_tag=live[self.u.below(len(live))]):
                left, used = left - 1, 0
            else:
                used += 1
                if used == per:
                    left, used = left - 1, 0


def _distractors(kit: _Kit, canvases: list, big: np.ndarray) -> None:
    """The distractor snakes of several images (same kit) side by side: per image, snake i gets up
    to max_distractor_retrial+1 tries; a try is a seed, then distractor_length-1 extensions (a
    failed try leaves the canvas as it was); an image stops when it is exhausted. Every image
    draws its own numbers in the order a one-image run would, so grouping changes nothing.
    `big` (G, wp*wp) holds the images' masks; canvas g's mask is the view big[g]."""
    p = kit.p
    R = p.max_paddle_retrial + 1
    flat = big.reshape(-1)
    active = list(range(len(canvases)))
    for _ in range(p.n_distractors):
        todo = list(active)
        for _ in range(p.max_distractor_retrial + 1):
            started = []
            for g in todo:
                cv = canvases[g]
                if cv.exhausted():
                    active.remove(g)
                    continue
                sd = cv.seed()
                if sd is not None:
                    started.append((g, sd))
            todo = [g for g in todo if g in active]
            if not started:  # every seed failed: each image's next try
                continue
            rows = np.array([g for g, _ in started])
            saved = big[rows].copy()
            tag = np.array([sd[0] for _, sd in started])
            f = np.array([sd[1] for _, sd in started])
            py = np.array([sd[2] for _, sd in started])
            px = np.array([sd[3] for _, sd in started])
            paddles = [[(int(t), int(ff))] for t, ff in zip(tag, f)]
            alive = np.arange(len(rows))
            for _ in range(p.distractor_length - 1):
                if alive.size == 0:
                    break
                u3 = np.array([[canvases[rows[i]].u() for _ in range(R)] for i in alive])
                good, nt, ny, nx, hf = _extend(kit, flat, rows[alive], tag[alive], py[alive], px[alive],
                                               tag[alive], f[alive], u3)
                for i in alive[~good]:
                    big[rows[i]] = saved[i]
                alive = alive[good]
                tag[alive], py[alive], px[alive], f[alive] = nt, ny, nx, hf
                for i, t, ff in zip(alive, nt, hf):
                    paddles[i].append((int(t), int(ff)))
            done = set()
            for i in alive:
                cv = canvases[rows[i]]
                for j, (t, ff) in enumerate(paddles[i]):  # earlier paddles' masks are already in
                    cv._stamp(t, ff, mask=j == len(paddles[i]) - 1)
                cv.since += len(paddles[i]) - 1
                cv.snakes += 1
                done.add(int(rows[i]))
            todo = [g for g in todo if g not in done]
            if not todo:
                break


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
    distractors: int = 0  # distractor snakes drawn (of n_distractors)


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
    return render_group(p, seed, [index], keep_layers)[0]


def render_group(p: SnakeParams, seed: int, indices, keep_layers: bool = False) -> list[Sample]:
    """Images `indices` of the stream `seed`, drawn side by side where that is faster (target
    snakes and distractor snakes); each is exactly `render(p, seed, i)`."""
    indices = list(indices)
    rngs = [np.random.default_rng([seed, i]) for i in indices]
    us = [_Uniforms(g) for g in rngs]
    labels = [int(u() < 0.5) for u in us]
    margins = [p.margins[u.below(len(p.margins))] for u in us]
    out: list = [None] * len(indices)
    for margin in sorted(set(margins)):
        kit = _kit(p, margin)
        members = [i for i, m in enumerate(margins) if m == margin]
        targets: dict = {}
        todo = members
        while todo:  # the reference resamples the two target snakes until both are complete
            got = _target_batch(kit, [rngs[i] for i in todo])
            for i, tg in zip(todo, got):
                if tg is not None:
                    targets[i] = tg
            todo = [i for i in todo if i not in targets]
        big = np.stack([targets[i]["mask"] for i in members])
        canvases = [_Canvas(kit, big[g], us[i], rngs[i]) for g, i in enumerate(members)]
        _distractors(kit, canvases, big)
        for g, i in enumerate(members):
            cv = canvases[g]
            if p.single_paddles:
                n_single = p.total_paddles(margin) - 2 * p.contour_length - p.n_distractors * p.distractor_length
                cv.fill_single(n_single, p.max_paddle_retrial)
            out[i] = _finish(kit, targets[i], cv, labels[i], keep_layers)
    return out


def _finish(kit: _Kit, tg: dict, cv: _Canvas, label: int, keep_layers: bool) -> Sample:
    """Target layers, markers, and the min-max scaled image."""
    p = kit.p
    n, pad, wp = p.size, kit.pad, kit.wp
    contrast = p.paddle_contrast * p.snake_contrast
    snakes = np.zeros((2, kit.wp2))
    for s in (0, 1):
        np.maximum.at(snakes[s], (tg["flat"][s][:, None] + kit.spr_off).ravel(),
                      (contrast * kit.line_flat[tg["tag"][s]]).ravel())
    snakes = snakes.reshape(2, wp, wp)[:, pad:pad + n, pad:pad + n]
    rest = cv.rest_layer(p.snake_contrast)[pad:pad + n, pad:pad + n]
    ends = tuple((kit.yx(int(tg["flat"][s][0])), kit.yx(int(tg["flat"][s][-1]))) for s in (0, 1))
    origin = cv.u.below(2)
    terminal = origin if label == 1 else 1 - origin
    tips = (ends[origin][0], ends[terminal][1])
    markers = np.maximum(_marker(n, p.antialias, tips[0], p.marker_radius),
                         _marker(n, p.antialias, tips[1], p.marker_radius))
    image = _bytescale(np.maximum(np.maximum(snakes.max(0), rest), markers))
    out = Sample(image=image, label=label, margin=kit.m, origin=origin, tips=tips, distractors=cv.snakes)
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
    each target snake's layer (what was drawn for it), and we check on those pixels:
      1. each target snake, binarised and dilated by margin+1 px (closing its own gaps), is one
         connected component - one dashed contour, not scattered paddles;
      2. the first marker sits on a pixel drawn by snake `origin` at its first tail; the second
         on a pixel drawn by the snake that ends there (its last head): snake `origin` for label
         1, the other snake for label 0 - and then on no pixel drawn by snake `origin` (a
         failure of this last check alone starts with "touching:": the reference procedure's
         overlap test lets the second snake's end touch the first snake; rare, see the report);
      3. both markers are visible in the saved image (among its brightest pixels);
      4. the saved image is exactly the min-max scaled max of the layers and the markers.
    """
    from scipy import ndimage

    if s.snakes is None:
        return ["sample has no layers: render it with keep_layers=True"]
    problems = []
    k8 = ndimage.generate_binary_structure(2, 2)
    drawn = [layer > 0.25 * layer.max() for layer in s.snakes]
    for i, on in enumerate(drawn):
        _, n = ndimage.label(ndimage.binary_dilation(on, _disc(s.margin + 1)), structure=k8)
        if n != 1:
            problems.append(f"target snake {i} is {n} pieces after closing gaps of {s.margin + 1} px")
    o = s.origin
    t = o if s.label == 1 else 1 - o
    (y0, x0), (y1, x1) = s.tips
    if (y0, x0) != tuple(s.ends[o][0]) or not drawn[o][y0, x0]:
        problems.append(f"first marker {(y0, x0)} is not on the first paddle of snake {o}")
    if (y1, x1) != tuple(s.ends[t][1]) or not drawn[t][y1, x1]:
        problems.append(f"second marker {(y1, x1)} is not on the last paddle of snake {t}")
    if s.label == 0 and drawn[o][y1, x1]:
        problems.append("touching: label 0, but the second marker's pixel is also drawn by the first marker's snake "
                        "(the procedure lets the two target snakes touch)")
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


GROUP = 16  # images drawn side by side in one process (see render_group)
CHUNK = 64  # images per job handed to a worker


def _render_chunk(job) -> list[Sample]:
    p, seed, indices = job
    out: list[Sample] = []
    for i in range(0, len(indices), GROUP):
        out += render_group(p, seed, indices[i:i + GROUP])
    return out


def _write_chunk(job) -> tuple[int, list[tuple[int, str]]]:
    """Render images [start, start+count) of one batch into imgs/<batch>/; returns the metadata
    lines (position in batch, line) for the parent to write once the batch is complete."""
    p, root, batch, first, start, count, seed, compress = job
    img_dir = Path(root) / "imgs" / str(batch)
    img_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for j, s in enumerate(_render_chunk((p, seed, list(range(start, start + count))))):
        k = start - first + j
        Image.fromarray(s.image, "L").save(img_dir / f"sample_{k}.png", compress_level=compress)
        lines.append((k, metadata_line(p, batch, k, s.label, s.margin)))
    return batch, lines


def _pool_map(fn, jobs, workers: int):
    """map over jobs in a process pool (workers > 1) or here, results as they come in order."""
    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(min(workers, len(jobs))) as pool:
            yield from pool.map(fn, jobs)
    else:
        yield from map(fn, jobs)


def write_dataset(root: Path, p: SnakeParams, total: int, seed: int = 0, workers: int = 0,
                  batch_size: int = BATCH, progress: bool = True, compress: int = 1) -> Path:
    """Generate `total` images into `root` in the official layout: imgs/<b>/sample_<k>.png and
    metadata/<b>.npy per batch of `batch_size`. A metadata file is written (atomically) only when
    its batch is complete, so an interrupted run resumes where it stopped. Image i of the data set
    is render(p, seed, i): the same bytes for any `workers` (0: all cores)."""
    root = Path(root)
    jobs, need = [], {}
    for b, first in enumerate(range(0, total, batch_size)):
        if (root / "metadata" / f"{b}.npy").is_file():
            continue
        size = min(batch_size, total - first)
        need[b] = size
        for start in range(first, first + size, CHUNK):
            jobs.append((p, str(root), b, first, start, min(CHUNK, first + size - start), seed, compress))
    workers = workers or os.cpu_count() or 1
    from ._common import progress_bar

    bar = progress_bar(total=sum(need.values()), desc=f"generating pathfinder{p.size}", unit="img",
                       show=bool(progress and jobs))
    got: dict[int, list] = {b: [] for b in need}
    for b, lines in _pool_map(_write_chunk, jobs, workers):
        got[b] += lines
        bar.update(len(lines))
        if len(got[b]) == need[b]:
            meta = root / "metadata" / f"{b}.npy"
            meta.parent.mkdir(parents=True, exist_ok=True)
            tmp = meta.with_name(f".{b}.npy.tmp{os.getpid()}")
            tmp.write_text("".join(line + "\n" for _, line in sorted(got.pop(b))))
            os.replace(tmp, meta)
    bar.close()
    return root


def render_many(p: SnakeParams, seed: int, indices, workers: int = 1) -> list[Sample]:
    """Samples for `indices` (no files); the same for any `workers` (process pool if > 1)."""
    indices = list(indices)
    jobs = [(p, seed, indices[i:i + CHUNK]) for i in range(0, len(indices), CHUNK)]
    return [s for part in _pool_map(_render_chunk, jobs, workers) for s in part]


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
