"""Procedural street scenes with dense Cityscapes-trainId labels.

A scene is drawn once into a *material* map (road, lane mark, window, wheel, ... each mapped to one
train id) plus a per-object shade map and a depth map; rendering turns materials into colours with
a palette and texture noise. Domains (see ``synthetic_domains``) re-render or post-process the
same scene, so labels are identical across domains and only appearance shifts.
"""

from dataclasses import dataclass

import cv2
import numpy as np

# material name -> (train id, source-domain RGB)
MATERIALS = {
    "sky": (10, (120, 170, 225)),
    "terrain": (9, (125, 160, 80)),
    "sidewalk": (1, (180, 170, 165)),
    "road": (0, (95, 95, 100)),
    "lane_mark": (0, (235, 235, 225)),
    "building": (2, (150, 120, 100)),
    "window": (2, (60, 75, 95)),
    "wall": (3, (170, 165, 150)),
    "fence": (4, (130, 110, 85)),
    "pole": (5, (110, 110, 115)),
    "light_box": (6, (40, 40, 35)),
    "lamp": (6, (250, 200, 60)),
    "sign": (7, (230, 200, 30)),
    "trunk": (8, (90, 65, 40)),
    "foliage": (8, (60, 120, 45)),
    "skin": (11, (220, 180, 150)),
    "clothes": (11, (170, 40, 60)),
    "car_body": (13, (40, 70, 160)),
    "car_glass": (13, (50, 60, 70)),
    "wheel": (13, (25, 25, 25)),
    "truck": (14, (200, 200, 190)),
    "bus": (15, (230, 120, 30)),
}
MATERIAL_NAMES = tuple(MATERIALS)
M = {name: i for i, name in enumerate(MATERIAL_NAMES)}
MATERIAL_TO_TRAIN_ID = np.array([MATERIALS[n][0] for n in MATERIAL_NAMES], dtype=np.uint8)
SOURCE_PALETTE = np.array([MATERIALS[n][1] for n in MATERIAL_NAMES], dtype=np.float32) / 255.0


@dataclass
class Scene:
    material: np.ndarray  # HxW uint8 material ids
    shade: np.ndarray  # HxW float32 per-object brightness factor
    depth: np.ndarray  # HxW float32 in [0, 1], 1 = far (horizon, sky)
    lights: list  # (x, y, radius, rgb) light sources for the night domain
    horizon: int

    @property
    def label(self) -> np.ndarray:
        return MATERIAL_TO_TRAIN_ID[self.material]


class _Canvas:
    def __init__(self, h, w, rng):
        self.h, self.w, self.rng = h, w, rng
        self.material = np.full((h, w), M["sky"], np.uint8)
        self.shade = np.ones((h, w), np.float32)
        self.depth = np.ones((h, w), np.float32)
        self.lights = []

    def poly(self, pts, material, depth, shade=None):
        pts = np.round(np.asarray(pts)).astype(np.int32)
        shade = self.rng.uniform(0.8, 1.2) if shade is None else shade
        cv2.fillPoly(self.material, [pts], int(M[material]))
        cv2.fillPoly(self.shade, [pts], float(shade))
        cv2.fillPoly(self.depth, [pts], float(depth))

    def rect(self, x0, y0, x1, y1, material, depth, shade=None):
        self.poly([(x0, y0), (x1, y0), (x1, y1), (x0, y1)], material, depth, shade)

    def ellipse(self, cx, cy, rx, ry, material, depth, shade=None):
        pts = cv2.ellipse2Poly((int(cx), int(cy)), (max(int(rx), 1), max(int(ry), 1)), 0, 0, 360, 10)
        self.poly(pts, material, depth, shade)


def draw_scene(rng: np.random.Generator, h: int, w: int) -> Scene:
    """Lay out one street scene: sky on top, road at the bottom, objects scaled by perspective."""
    c = _Canvas(h, w, rng)
    yh = int(h * rng.uniform(0.38, 0.5))  # horizon
    xv = w * rng.uniform(0.4, 0.6)  # vanishing point

    def scale(y):  # perspective: 0 at the horizon, 1 at the bottom row
        return max((y - yh) / (h - yh), 0.02)

    def depth(y):
        return 1.0 - 0.95 * scale(y)

    # ground: terrain, sidewalks, road (depth as a vertical gradient)
    c.rect(0, yh, w, h, "terrain", 0.5, 1.0)
    ys = np.arange(h, dtype=np.float32)
    c.depth[yh:] = 1.0 - 0.95 * np.clip((ys[yh:, None] - yh) / (h - yh), 0, 1)
    road_half = w * rng.uniform(0.35, 0.55)
    walk = w * rng.uniform(0.15, 0.3)
    for side in (-1, 1):
        outer = xv + side * (road_half + walk)
        c.material[_poly_mask(h, w, [(xv, yh), (outer, h), (xv + side * road_half, h)])] = M["sidewalk"]
    c.material[_poly_mask(h, w, [(xv - 2, yh), (xv + 2, yh), (xv + road_half, h), (xv - road_half, h)])] = M["road"]
    # dashed lane marks along the centre line
    for t0 in np.arange(0.05, 1.0, 0.12):
        t1 = t0 + 0.06
        y0, y1 = yh + t0 * (h - yh), yh + t1 * (h - yh)
        wd0, wd1 = 0.006 * w * t0 + 0.5, 0.006 * w * t1 + 0.5
        c.material[_poly_mask(h, w, [(xv - wd0, y0), (xv + wd0, y0), (xv + wd1, y1), (xv - wd1, y1)])] = M["lane_mark"]

    # buildings along both sides, with windows; a wall or fence in front of some
    for side in (-1, 1):
        x = xv + side * w * 0.04
        while 0 <= x <= w:
            bw = w * rng.uniform(0.06, 0.16) * (0.5 + abs(x - xv) / w)
            top = yh - h * rng.uniform(0.12, 0.38) * (0.6 + abs(x - xv) / w)
            x0, x1 = sorted((x, x + side * bw))
            bottom = yh + 2
            c.rect(x0, top, x1, bottom, "building", 0.85)
            _windows(c, x0, top, x1, bottom)
            if rng.random() < 0.35:
                c.rect(x0, bottom - h * 0.04, x1, bottom + 1, rng.choice(["wall", "fence"]), 0.84)
            x += side * bw

    objects = []  # (ground y, draw function) painted far to near
    for _ in range(rng.integers(2, 6)):  # trees and poles on the sidewalks
        y = rng.uniform(yh + 0.1 * (h - yh), h)
        side = rng.choice([-1, 1])
        xs = xv + side * (road_half * scale(y) + walk * scale(y) * rng.uniform(0.3, 0.9))
        objects.append((y, rng.choice([_tree, _pole]), xs))
    for _ in range(rng.integers(1, 5)):  # vehicles on the road
        y = rng.uniform(yh + 0.15 * (h - yh), h + 0.1 * (h - yh))
        xs = xv + rng.uniform(-0.8, 0.8) * road_half * scale(y)
        objects.append((y, _bus_or_truck if rng.random() < 0.25 else _car, xs))
    for _ in range(rng.integers(1, 5)):  # pedestrians on the sidewalks
        y = rng.uniform(yh + 0.1 * (h - yh), h)
        side = rng.choice([-1, 1])
        xs = xv + side * (road_half + walk * rng.uniform(0.2, 0.8)) * scale(y)
        objects.append((y, _person, xs))
    for y, draw, x in sorted(objects, key=lambda o: o[0]):
        draw(c, x, y, scale(y) * h, depth(y))
    return Scene(c.material, c.shade, c.depth, c.lights, yh)


def _poly_mask(h, w, pts):
    mask = np.zeros((h, w), np.uint8)
    cv2.fillPoly(mask, [np.round(np.asarray(pts)).astype(np.int32)], 1)
    return mask.astype(bool)


def _windows(c, x0, top, x1, bottom):
    ww, wh = (x1 - x0) / 7, (bottom - top) / 10
    if ww < 2 or wh < 2:
        return
    for wy in np.arange(top + wh, bottom - 2 * wh, 2 * wh):
        for wx in np.arange(x0 + ww, x1 - 1.5 * ww, 2 * ww):
            c.rect(wx, wy, wx + ww, wy + wh, "window", 0.85)


def _tree(c, x, y, size, d):
    trunk_w, height = 0.03 * size, 0.9 * size
    c.rect(x - trunk_w, y - 0.5 * height, x + trunk_w, y, "trunk", d)
    c.ellipse(x, y - 0.7 * height, 0.25 * size, 0.3 * size, "foliage", d)


def _pole(c, x, y, size, d):
    pw, height = max(0.015 * size, 1), 1.1 * size
    c.rect(x - pw, y - height, x + pw, y, "pole", d)
    top = y - height
    if c.rng.random() < 0.5:
        bw, bh = 0.06 * size, 0.16 * size
        c.rect(x - bw, top, x + bw, top + bh, "light_box", d)
        lamp_y = top + bh * c.rng.choice([0.2, 0.5, 0.8])
        c.ellipse(x, lamp_y, 0.6 * bw, 0.15 * bh, "lamp", d, 1.0)
        c.lights.append((x, lamp_y, 0.2 * size, (1.0, 0.8, 0.3)))
    else:
        r = 0.07 * size
        c.ellipse(x, top + r, r, r, "sign", d)


def _car(c, x, y, size, d):
    cw, ch = 0.45 * size, 0.22 * size
    c.rect(x - cw / 2, y - ch, x + cw / 2, y - 0.15 * ch, "car_body", d)
    c.poly(
        [
            (x - 0.35 * cw, y - ch),
            (x - 0.25 * cw, y - 1.6 * ch),
            (x + 0.25 * cw, y - 1.6 * ch),
            (x + 0.35 * cw, y - ch),
        ],
        "car_body",
        d,
    )
    c.rect(x - 0.22 * cw, y - 1.5 * ch, x + 0.22 * cw, y - 1.05 * ch, "car_glass", d)
    for wx in (x - 0.32 * cw, x + 0.32 * cw):
        c.ellipse(wx, y - 0.15 * ch, 0.1 * cw, 0.15 * ch, "wheel", d, 1.0)
    for lx in (x - 0.4 * cw, x + 0.4 * cw):
        c.lights.append((lx, y - 0.6 * ch, 0.1 * size, (1.0, 1.0, 0.85)))


def _bus_or_truck(c, x, y, size, d):
    kind = c.rng.choice(["bus", "truck"])
    bw, bh = 0.6 * size, 0.6 * size
    c.rect(x - bw / 2, y - bh, x + bw / 2, y - 0.08 * bh, kind, d)
    if kind == "bus":
        for wx in np.linspace(x - 0.4 * bw, x + 0.3 * bw, 4):
            c.rect(wx, y - 0.85 * bh, wx + 0.15 * bw, y - 0.6 * bh, "car_glass", d)
    for wx in (x - 0.35 * bw, x + 0.35 * bw):
        c.ellipse(wx, y - 0.08 * bh, 0.07 * bw, 0.08 * bh, "wheel", d, 1.0)


def _person(c, x, y, size, d):
    ph = 0.45 * size
    c.rect(x - 0.05 * ph, y - 0.45 * ph, x - 0.01 * ph, y, "clothes", d, 0.6)
    c.rect(x + 0.01 * ph, y - 0.45 * ph, x + 0.05 * ph, y, "clothes", d, 0.6)
    c.rect(x - 0.09 * ph, y - 0.82 * ph, x + 0.09 * ph, y - 0.43 * ph, "clothes", d)
    c.ellipse(x, y - 0.9 * ph, 0.07 * ph, 0.08 * ph, "skin", d)


def low_frequency_noise(rng, h, w, cells=8):
    """Smooth noise in [-1, 1] (bicubic upsampling of a coarse random grid)."""
    grid = rng.uniform(-1, 1, (cells, cells * max(w // h, 1))).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def render(scene: Scene, palette: np.ndarray, rng: np.random.Generator, texture_scale=1.0) -> np.ndarray:
    """Colour a scene: palette colour x object shade x smooth lighting + per-pixel grain. HxWx3 in [0, 1]."""
    h, w = scene.material.shape
    img = palette[scene.material] * scene.shade[..., None]
    img *= 1.0 + 0.12 * low_frequency_noise(rng, h, w)[..., None]
    img += rng.normal(0, 0.025 * texture_scale, img.shape).astype(np.float32)
    return np.clip(img, 0, 1)
