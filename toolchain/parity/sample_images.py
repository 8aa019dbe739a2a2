"""Structured images for parity samples of image models when the user gives no ``--inputs``.

Gaussian noise is a poor probe of a vision model: a text detector's probability map on noise is all
near zero, a classifier's logits barely move, and parity on such outputs proves little (issue 14).
Shapes, lines and text drawn with Pillow have edges, flat regions and strokes, which is what the
model's filters respond to. Values are scaled to [-1, 1] ((x / 255 - 0.5) / 0.5, the normalisation
of Paddle OCR and many torchvision exports), seeded and deterministic.
"""
from __future__ import annotations

import numpy as np

MIN_SIDE = 16           # smaller spatial dims are not images (sequence features, tiny tensors)
CHANNELS = (1, 3, 4)


def image_layout(shape: tuple[int, ...]) -> str | None:
    """``"NCHW"`` or ``"NHWC"`` when a 4-d float input's shape looks like a batch of images."""
    if len(shape) != 4:
        return None
    if shape[1] in CHANNELS and min(shape[2], shape[3]) >= MIN_SIDE:
        return "NCHW"
    if shape[3] in CHANNELS and min(shape[1], shape[2]) >= MIN_SIDE:
        return "NHWC"
    return None


def _draw(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """One RGB image (H, W, 3) in [0, 255]: a light page with filled shapes, lines and dark text."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(180, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 8))):
        x0, x1 = sorted(int(v) for v in rng.integers(0, width, 2))
        y0, y1 = sorted(int(v) for v in rng.integers(0, height, 2))
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = int(rng.integers(0, 3))
        if shape == 0:
            draw.rectangle((x0, y0, max(x1, x0 + 2), max(y1, y0 + 2)), fill=colour)
        elif shape == 1:
            draw.ellipse((x0, y0, max(x1, x0 + 2), max(y1, y0 + 2)), fill=colour)
        else:
            draw.line((x0, y0, x1, y1), fill=colour, width=int(rng.integers(1, 4)))
    size = max(8, min(height // 3, 32))
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow before 10.1: a fixed bitmap font
        font = ImageFont.load_default()
    words = ("stackc", "parity", "0123", "Edge", "model", "HELLO", "42.7")
    for row in range(max(1, height // (size * 2))):
        text = " ".join(words[int(i)] for i in rng.integers(0, len(words), 3))
        draw.text((int(rng.integers(0, max(1, width // 4))), row * size * 2 + int(rng.integers(0, size))), text,
                  fill=tuple(int(v) for v in rng.integers(0, 80, 3)), font=font)
    return np.asarray(image, dtype=np.float32)


def structured_images(shape: tuple[int, ...], layout: str, dtype: np.dtype, rng: np.random.Generator) -> np.ndarray:
    """A batch of drawn images of ``shape`` (NCHW or NHWC), scaled to [-1, 1]."""
    batch, channels, height, width = (shape if layout == "NCHW" else (shape[0], shape[3], shape[1], shape[2]))
    images = []
    for _ in range(batch):
        rgb = _draw(height, width, rng)
        if channels == 1:
            pixels = rgb.mean(axis=2, keepdims=True)
        elif channels == 4:
            pixels = np.concatenate([rgb, np.full((height, width, 1), 255.0, np.float32)], axis=2)
        else:
            pixels = rgb
        images.append(pixels.transpose(2, 0, 1) if layout == "NCHW" else pixels)
    return ((np.stack(images) / 255.0 - 0.5) / 0.5).astype(dtype)
