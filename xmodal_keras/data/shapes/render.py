"""Drawing a shapes scene: anti-aliased polygons on a dark background texture."""

import numpy as np

from xmodal_keras.data.dataset_layout import check_int
from xmodal_keras.data.shapes.scene import MAX_IMAGE_SIZE, MIN_IMAGE_SIZE, Scene, SceneObject

# Bright, saturated object colours; backgrounds stay dark and nearly grey (see _background).
COLOUR_RGB = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (40, 90, 240),
    "yellow": (240, 220, 40),
    "purple": (165, 60, 215),
    "orange": (250, 140, 20),
    "white": (245, 245, 245),
}
SUPERSAMPLING = 4  # anti-aliasing: samples per pixel along each axis


def _star_polygon(points: int = 5, inner: float = 0.45) -> np.ndarray:
    angles = -np.pi / 2 + np.arange(2 * points) * np.pi / points
    radii = np.where(np.arange(2 * points) % 2 == 0, 1.0, inner)
    return np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)


# Polygons in unit coordinates (y points down), inside the square [-1, 1]^2.
_POLYGONS = {
    "triangle": np.array([[0.0, -1.0], [0.95, 0.75], [-0.95, 0.75]]),
    "diamond": np.array([[0.0, -1.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]]),
    "star": _star_polygon(),
}


def _inside_polygon(u: np.ndarray, v: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Even-odd rule, vectorised over points; u has shape (1, W), v shape (H, 1)."""
    inside = np.zeros(np.broadcast_shapes(u.shape, v.shape), dtype=bool)
    for (x1, y1), (x2, y2) in zip(vertices, np.roll(vertices, -1, axis=0), strict=True):
        if y1 == y2:
            continue
        crosses = (y1 > v) != (y2 > v)
        x_at_v = x1 + (x2 - x1) * (v - y1) / (y2 - y1)
        inside ^= crosses & (u < x_at_v)
    return inside


def _shape_mask(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    if shape == "circle":
        return u * u + v * v <= 1.0
    if shape == "square":
        return (np.abs(u) <= 0.82) & (np.abs(v) <= 0.82)
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return ((au <= 0.32) & (av <= 0.95)) | ((av <= 0.32) & (au <= 0.95))
    return _inside_polygon(u, v, _POLYGONS[shape])


def _coverage(obj: SceneObject, image_size: int) -> tuple[slice, slice, np.ndarray]:
    """The object's pixel window and its anti-aliased coverage (fraction inside) there."""
    cx, cy, half = obj.x * image_size, obj.y * image_size, obj.half_extent * image_size
    x0, x1 = max(0, int(np.floor(cx - half))), min(image_size, int(np.ceil(cx + half)))
    y0, y1 = max(0, int(np.floor(cy - half))), min(image_size, int(np.ceil(cy + half)))
    offsets = (np.arange(SUPERSAMPLING) + 0.5) / SUPERSAMPLING
    xs = (np.arange(x0, x1)[:, None] + offsets[None, :]).reshape(1, -1)
    ys = (np.arange(y0, y1)[:, None] + offsets[None, :]).reshape(-1, 1)
    mask = _shape_mask(obj.shape, (xs - cx) / half, (ys - cy) / half)
    coverage = mask.reshape(y1 - y0, SUPERSAMPLING, x1 - x0, SUPERSAMPLING).mean(axis=(1, 3))
    return slice(y0, y1), slice(x0, x1), coverage


def _background(kind: str, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """A dark, nearly grey texture (float32, HxWx3) so every object colour stands out."""
    centres = (np.arange(image_size, dtype=np.float32) + 0.5) / image_size
    xx, yy = centres[None, :], centres[:, None]
    low = rng.uniform(30.0, 70.0)
    high = low + rng.uniform(25.0, 55.0)
    if kind == "noisy":
        grey = rng.uniform(low, high) + rng.normal(0.0, 14.0, (image_size, image_size))
    elif kind == "shaded":
        angle = rng.uniform(0.0, 2 * np.pi)
        ramp = np.cos(angle) * (xx - 0.5) + np.sin(angle) * (yy - 0.5)
        ramp = (ramp - ramp.min()) / max(float(ramp.max() - ramp.min()), 1e-6)
        grey = low + (high - low) * ramp
    elif kind == "striped":
        angle = rng.choice([0.0, 0.25, 0.5, 0.75]) * np.pi
        period = rng.uniform(0.1, 0.2)
        phase = rng.uniform(0.0, period)
        along = np.cos(angle) * xx + np.sin(angle) * yy + phase
        grey = np.where(np.floor(2 * along / period) % 2 == 0, low, high)
    else:  # checkered
        cell = rng.uniform(0.08, 0.16)
        dx, dy = rng.uniform(0.0, cell, size=2)
        grey = np.where(
            (np.floor((xx + dx) / cell) + np.floor((yy + dy) / cell)) % 2 == 0, low, high
        )
    tint = rng.uniform(-10.0, 10.0, size=3)
    grey = np.broadcast_to(grey, (image_size, image_size))
    return (grey[:, :, None] + tint[None, None, :]).astype(np.float32)


def render_scene(scene: Scene, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """Draws `scene` (anti-aliased shapes on its background texture) as uint8 HxWx3.

    Args:
        scene: the scene; its coordinates are fractions of the side, so any size works.
        image_size: the side of the square image in pixels.
        rng: the random generator for texture, colour jitter and pixel noise.

    Example:

    >>> from xmodal_keras.data.shapes.scene import sample_scene
    >>> scene = sample_scene(np.random.default_rng(0), "a.png", 32)
    >>> image = render_scene(scene, 32, np.random.default_rng(0))
    >>> image.shape, image.dtype
    ((32, 32, 3), dtype('uint8'))
    """
    image_size = check_int("image_size", image_size, MIN_IMAGE_SIZE, MAX_IMAGE_SIZE)
    image = _background(scene.background, image_size, rng)
    for obj in scene.objects:
        rows, cols, coverage = _coverage(obj, image_size)
        colour = np.asarray(COLOUR_RGB[obj.colour], np.float32) + rng.uniform(-12.0, 12.0, 3)
        alpha = coverage[:, :, None].astype(np.float32)
        image[rows, cols] = image[rows, cols] * (1.0 - alpha) + colour.astype(np.float32) * alpha
    image += rng.normal(0.0, 4.0, image.shape).astype(np.float32)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)
