"""Pictures of fields as PNG bytes, with no plotting library.

A field is mapped through a perceptually ordered colour ramp (dark blue at its
minimum, yellow at its maximum) and enlarged by whole pixels, so cells stay crisp.
"""

from __future__ import annotations

import base64
import struct
import zlib

import numpy as np
from numpy.typing import NDArray

# Anchor colours of the ramp, evenly spaced from the field's minimum to its maximum.
RAMP = np.array(
    [
        (68, 1, 84),
        (59, 82, 139),
        (33, 145, 140),
        (94, 201, 98),
        (253, 231, 37),
    ],
    dtype=np.float64,
)
MIN_SIDE_PX = 256


def colorize(field: NDArray[np.float64]) -> NDArray[np.uint8]:
    """(N, N) values -> (N, N, 3) RGB, the field's range spread over the ramp."""
    low, high = float(field.min()), float(field.max())
    unit = np.zeros_like(field) if high == low else (field - low) / (high - low)
    position = unit * (len(RAMP) - 1)
    lower = np.minimum(position.astype(np.int64), len(RAMP) - 2)
    weight = (position - lower)[..., None]
    rgb = RAMP[lower] * (1.0 - weight) + RAMP[lower + 1] * weight
    pixels: NDArray[np.uint8] = np.rint(rgb).astype(np.uint8)
    return pixels


def field_png(field: NDArray[np.float64]) -> bytes:
    """A PNG of ``field``, enlarged by whole pixels to at least MIN_SIDE_PX a side."""
    if field.ndim != 2 or field.size == 0 or not np.isfinite(field).all():
        raise ValueError(
            f"field of shape {field.shape} cannot be drawn; allowed: a finite 2-D array"
        )
    scale = max(1, -(-MIN_SIDE_PX // max(field.shape)))
    rgb = np.repeat(np.repeat(colorize(field), scale, axis=0), scale, axis=1)
    return encode_png(rgb)


def encode_png(rgb: NDArray[np.uint8]) -> bytes:
    """Encode an (H, W, 3) uint8 image as a PNG (8-bit truecolour, no filtering)."""
    height, width, _ = rgb.shape
    rows = np.concatenate([np.zeros((height, 1), dtype=np.uint8), rgb.reshape(height, -1)], axis=1)

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows.tobytes(), 6))
        + chunk(b"IEND", b"")
    )


HISTOGRAM_SIZE = (160, 320)  # height, width of one panel in pixels
PANEL_GAP = 16
BAR_COLOURS = (RAMP[1], RAMP[3])


def histograms_png(columns: list[NDArray[np.float64]], bins: int = 20) -> bytes:
    """Side-by-side bar histograms of each column (own value range each), as a PNG."""
    height, width = HISTOGRAM_SIZE
    panels = []
    for k, values in enumerate(columns):
        panel = np.full((height, width, 3), 255, dtype=np.uint8)
        finite = values[np.isfinite(values)]
        if finite.size:
            low, high = float(finite.min()), float(finite.max())
            counts, _ = np.histogram(
                finite, bins=bins, range=(low, high if high > low else low + 1)
            )
            bar = width // bins
            tallest = max(int(counts.max()), 1)
            for b, count in enumerate(counts):
                top = height - round((height - 4) * count / tallest)
                colour = BAR_COLOURS[k % len(BAR_COLOURS)].astype(np.uint8)
                panel[top:height, b * bar + 1 : (b + 1) * bar - 1] = colour
        panel[height - 1, :] = 0  # baseline
        panels.append(panel)
        panels.append(np.full((height, PANEL_GAP, 3), 255, dtype=np.uint8))
    return encode_png(np.concatenate(panels[:-1], axis=1))


def markdown_image(png: bytes, caption: str) -> str:
    """Markdown that shows ``png`` inline (the Dagster UI renders it in metadata)."""
    return f"![{caption}](data:image/png;base64,{base64.b64encode(png).decode('ascii')})"
