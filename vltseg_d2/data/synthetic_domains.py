"""Appearance domains of the synthetic benchmark: one source and five shifted targets.

Each domain maps (scene, rng) -> RGB image in [0, 1]; the labels never change.
"""

import colorsys

import cv2
import numpy as np

from .synthetic_scene import SOURCE_PALETTE, M, Scene, low_frequency_noise, render


def source(scene: Scene, rng) -> np.ndarray:
    return render(scene, SOURCE_PALETTE, rng)


def night(scene: Scene, rng) -> np.ndarray:
    img = render(scene, SOURCE_PALETTE, rng) * 0.18
    img[scene.material == M["sky"]] = (0.02, 0.03, 0.08)
    img *= np.array([0.8, 0.85, 1.2], np.float32)  # bluish
    h, w = scene.material.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    for x, y, radius, rgb in scene.lights:  # glow around lamps and headlights
        glow = np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * max(radius, 1.0) ** 2))
        img += 0.9 * glow[..., None] * np.asarray(rgb, np.float32)
    img += rng.normal(0, 0.03, img.shape).astype(np.float32)  # sensor noise
    return np.clip(img, 0, 1)


def fog(scene: Scene, rng) -> np.ndarray:
    img = render(scene, SOURCE_PALETTE, rng)
    transmission = np.exp(-4.0 * scene.depth)[..., None]  # Koschmieder's law, depth in [0, 1]
    airlight = np.float32(rng.uniform(0.75, 0.85))
    return np.clip(img * transmission + airlight * (1 - transmission), 0, 1)


def rain(scene: Scene, rng) -> np.ndarray:
    img = render(scene, SOURCE_PALETTE, rng)
    grey = img.mean(axis=2, keepdims=True)
    img = 0.6 * (0.5 * img + 0.5 * grey)  # darker, washed out
    h, w = scene.material.shape
    streaks = np.zeros((h, w), np.float32)
    for _ in range(int(h * w / 400)):
        x, y = rng.integers(0, w), rng.integers(0, h)
        length = rng.integers(h // 20, h // 8)
        cv2.line(streaks, (int(x), int(y)), (int(x + length * 0.2), int(y + length)), 1.0, 1)
    img = cv2.GaussianBlur(img, (3, 3), 0) + 0.35 * streaks[..., None]
    return np.clip(img, 0, 1)


def snow(scene: Scene, rng) -> np.ndarray:
    img = render(scene, SOURCE_PALETTE, rng)
    h, w = scene.material.shape
    ground = np.isin(scene.material, [M["road"], M["sidewalk"], M["terrain"], M["lane_mark"]])
    cover = np.clip(0.6 + 0.5 * low_frequency_noise(rng, h, w, cells=16), 0, 1) * ground
    img = img * (1 - cover[..., None]) + 0.92 * cover[..., None]
    img[scene.material == M["sky"]] = (0.78, 0.8, 0.84)
    flakes = (rng.random((h, w)) < 0.01).astype(np.float32)
    flakes = cv2.dilate(flakes, np.ones((2, 2), np.uint8))
    img = np.maximum(img, flakes[..., None])
    return np.clip(img * 1.05, 0, 1)


def _hue_rotated_palette(degrees: float) -> np.ndarray:
    out = np.empty_like(SOURCE_PALETTE)
    for i, (r, g, b) in enumerate(SOURCE_PALETTE):
        hh, ll, ss = colorsys.rgb_to_hls(r, g, b)
        out[i] = colorsys.hls_to_rgb((hh + degrees / 360.0) % 1.0, ll, min(ss * 1.3, 1.0))
    return out


_TEXTURE_PALETTE = _hue_rotated_palette(150.0)


def texture(scene: Scene, rng) -> np.ndarray:
    """A palette and texture shift: every material's hue rotated, coarser grain."""
    return render(scene, _TEXTURE_PALETTE, rng, texture_scale=3.0)


DOMAINS = {"source": source, "night": night, "fog": fog, "rain": rain, "snow": snow, "texture": texture}
TARGET_DOMAINS = tuple(d for d in DOMAINS if d != "source")
