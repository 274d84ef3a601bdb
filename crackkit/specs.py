"""Names and size rules of the networks, readable without importing the network code.

Ground floor of the package: imports nothing else of crackkit. :mod:`crackkit.config` validates
run parameters against these, :mod:`crackkit.model` builds the networks they name.

The input-size rule of every published SegDecNet network: both sides are multiples of 8 (three
2x2 max-poolings to the 1/8 volume), and the decision head, which pools the volume three more
times with flooring 2x2 max-poolings, must end on a map of at least two cells, because its last
FeatureNorm divides by an unbiased standard deviation (one cell has none). The head's last map is
``floor(H / 64) x floor(W / 64)``, so the smallest inputs are 64x128 and 128x64.
"""

from __future__ import annotations

__all__ = [
    "ARCHITECTURES",
    "CHECKPOINT_FORMAT",
    "DOWNSAMPLING",
    "MAX_IMAGE_PIXELS",
    "check_input_size",
    "head_map_size",
    "smallest_input",
]

#: The published networks: the 2021 SegDecNet (1/8 output), the seed fork's upsampling network
#: and SegDecNet++ (2023), both at full resolution.
ARCHITECTURES = ("segdecnet", "segdecnet-up", "segdecnet++")
DOWNSAMPLING = 8
HEAD_POOLING = 8
#: Version of crackkit's checkpoint layout. 2: the published networks (crackkit 0.2); checkpoints
#: without a version were written by crackkit 0.1, whose networks computed other functions.
CHECKPOINT_FORMAT = 2


#: Default largest image read, in pixels (the run parameter ``max_image_pixels``, ``crackkit
#: predict --max-pixels``): a 61-megapixel photo (9504 x 6336) fits, a 100-megapixel one is
#: refused from its header before any pixel is decoded. Decoded, it takes 192 MB as RGB uint8.
MAX_IMAGE_PIXELS = 64_000_000


def head_map_size(height: int, width: int) -> tuple[int, int]:
    """Size of the decision head's last feature map for an input of ``height x width``."""
    return (height // DOWNSAMPLING) // HEAD_POOLING, (width // DOWNSAMPLING) // HEAD_POOLING


def smallest_input(height: int, width: int) -> tuple[int, int]:
    """The valid input size nearest to ``height x width`` that is not smaller in either side."""

    def up8(v: int) -> int:
        return max(DOWNSAMPLING, -(-v // DOWNSAMPLING) * DOWNSAMPLING)

    h, w = up8(height), up8(width)
    h, w = max(h, 64), max(w, 64)
    if (h // 64) * (w // 64) < 2:
        if w >= h:
            w = max(w, 128)
        else:
            h = max(h, 128)
    return h, w


def check_input_size(height: int, width: int) -> None:
    """Refuse an input size the published networks cannot take.

    Raises:
        ValueError: a side is not a positive multiple of 8, or the decision head's last map would
            hold fewer than two cells; the message gives the nearest valid size.
    """
    problems = []
    bad = [(n, v) for n, v in (("input_height", height), ("input_width", width)) if v % 8 or v < 8]
    if bad:
        problems.append(
            "sides must be multiples of 8 (three 2x2 poolings); got "
            + ", ".join(f"{n}={v}" for n, v in bad)
        )
    else:
        hh, hw = head_map_size(height, width)
        if hh < 1 or hw < 1 or hh * hw < 2:
            problems.append(
                f"the decision head pools {height}x{width} to {hh}x{hw}, and its last "
                "normalisation needs at least 2 cells (floor(H/64) * floor(W/64) >= 2)"
            )
    if problems:
        h, w = smallest_input(height, width)
        raise ValueError(
            f"SegDecNet cannot take a {height}x{width} input: {'; '.join(problems)}. "
            f"The nearest valid size is input_height={h}, input_width={w} "
            "(the smallest inputs are 64x128 and 128x64)"
        )
