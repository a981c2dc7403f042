"""The image worker: CPU-bound operations in a process pool, progress after each one.

Each operation runs in the worker's process pool (``job.run_in_process``), so
the event loop stays free to renew locks and report progress between them.
The pixel functions are plain module-level functions (they are pickled), and
this module imports nothing heavy: the pool's processes load only it.
"""

from __future__ import annotations

import hashlib
import random
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bullbridge import ActiveJob

Image = tuple[bytes, int]  # 8-bit grayscale pixels, width (images are square)


def load(path: str, size: int) -> Image:
    """Stands in for reading the upload: deterministic noise of ``size`` x ``size``."""
    return random.Random(path).randbytes(size * size), size


def blur(image: Image) -> Image:
    """3x3 box blur."""
    pixels, w = image
    out = bytearray(len(pixels))
    for y in range(w):
        rows = [r for r in (y - 1, y, y + 1) if 0 <= r < w]
        for x in range(w):
            cols = [c for c in (x - 1, x, x + 1) if 0 <= c < w]
            out[y * w + x] = sum(pixels[r * w + c] for r in rows for c in cols) // (len(rows) * len(cols))
    return bytes(out), w


def sharpen(image: Image) -> Image:
    """Unsharp mask: twice the pixel minus its blur."""
    pixels, w = image
    blurred, _ = blur(image)
    return bytes(max(0, min(255, 2 * p - b)) for p, b in zip(pixels, blurred)), w


def thumbnail(image: Image) -> Image:
    """Halve each side, averaging 2x2 blocks."""
    pixels, w = image
    half = w // 2
    out = bytearray(half * half)
    for y in range(half):
        for x in range(half):
            i = 2 * y * w + 2 * x
            out[y * half + x] = (pixels[i] + pixels[i + 1] + pixels[i + w] + pixels[i + w + 1]) // 4
    return bytes(out), half


OPERATIONS = {"blur": blur, "sharpen": sharpen, "thumbnail": thumbnail}


async def process(job: ActiveJob) -> dict[str, Any]:
    operations = job.data["operations"]
    unknown = [op for op in operations if op not in OPERATIONS]
    if unknown:
        raise ValueError(f"unknown operation(s) {unknown}: known are {sorted(OPERATIONS)}")
    image = load(job.data["image"], job.data.get("size", 96))
    for done, op in enumerate(operations, 1):
        image = await job.run_in_process(OPERATIONS[op], image)
        job.update_progress(round(100 * done / len(operations)))
    pixels, width = image
    return {
        "image": job.data["image"],
        "operations": operations,
        "size": width,
        "sha1": hashlib.sha1(pixels).hexdigest(),
    }
