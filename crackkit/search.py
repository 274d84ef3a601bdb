"""Search spaces beyond the grid: run parameters drawn at random, reproducibly.

``crackkit sweep --sample lr loguniform:1e-5:1e-2 --num-samples 8`` draws 8 learning rates. A
distribution is written ``KIND:LOW:HIGH``:

- ``uniform:LOW:HIGH``: a float, uniform in [LOW, HIGH];
- ``loguniform:LOW:HIGH``: a float whose logarithm is uniform (LOW > 0), for rates and weights;
- ``randint:LOW:HIGH``: an integer, LOW to HIGH inclusive.

The points are drawn by the sweep itself, before anything runs, from one random generator seeded
with ``--search-seed``: the same command draws the same points, so an interrupted search started
again continues the same runs, and a larger ``--num-samples`` keeps the first points and adds
more. Floats are kept to 4 significant digits (``lr=0.0003162``), which keeps folder names short;
every drawn value goes through :func:`crackkit.config.coerce_value`, so it has its field's type.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from crackkit.config import ConfigError, coerce_value, field_names

__all__ = ["DISTRIBUTIONS", "Distribution", "parse_space", "draw_points"]

DISTRIBUTIONS = ("uniform", "loguniform", "randint")
SIGNIFICANT_DIGITS = 4


@dataclass(frozen=True)
class Distribution:
    """One parameter's distribution: ``kind`` (one of :data:`DISTRIBUTIONS`), ``low``, ``high``."""

    kind: str
    low: float
    high: float

    def __str__(self) -> str:
        return f"{self.kind}:{self.low:g}:{self.high:g}"

    def draw(self, rng: random.Random) -> float | int:
        if self.kind == "randint":
            return rng.randint(int(self.low), int(self.high))
        if self.kind == "loguniform":
            x = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        else:
            x = rng.uniform(self.low, self.high)
        return float(f"{x:.{SIGNIFICANT_DIGITS}g}")


def _parse_one(name: str, text: str) -> Distribution:
    parts = [p.strip() for p in str(text).split(":")]
    usage = (
        f"--sample {name} {text!r}: write KIND:LOW:HIGH with KIND one of "
        f"{', '.join(DISTRIBUTIONS)}, e.g. loguniform:1e-5:1e-2"
    )
    if len(parts) != 3 or parts[0] not in DISTRIBUTIONS:
        raise ConfigError(usage)
    try:
        low, high = float(parts[1]), float(parts[2])
    except ValueError:
        raise ConfigError(usage) from None
    if not (math.isfinite(low) and math.isfinite(high)) or low >= high:
        raise ConfigError(f"--sample {name} {text!r}: LOW must be below HIGH")
    if parts[0] == "loguniform" and low <= 0:
        raise ConfigError(f"--sample {name} {text!r}: a log-uniform LOW must be above 0")
    if parts[0] == "randint" and not (low.is_integer() and high.is_integer()):
        raise ConfigError(f"--sample {name} {text!r}: randint bounds are integers")
    dist = Distribution(parts[0], low, high)
    # the field must take what the distribution draws: any float (probed with 0.5), or integers
    probes = [int(low), int(high)] if dist.kind == "randint" else [low, high, 0.5]
    for value in probes:
        try:
            coerce_value(name, value)
        except ConfigError as exc:
            hint = "; use randint for an integer parameter" if dist.kind != "randint" else ""
            raise ConfigError(f"--sample {name} {text!r}: {exc}{hint}") from None
    return dist


def parse_space(pairs: Sequence[Sequence[str]] | None) -> dict[str, Distribution]:
    """``[("lr", "loguniform:1e-5:1e-2")]`` to ``{"lr": Distribution(...)}``.

    Raises:
        ConfigError: an unknown parameter, a malformed or empty distribution, a name given twice,
            ``seed`` (seeds are given with ``--seeds``), or bounds the field's type refuses.
    """
    space: dict[str, Distribution] = {}
    for name, text in pairs or []:
        if name == "seed":
            raise ConfigError("seeds are not drawn; give them with --seeds")
        if name in space:
            raise ConfigError(f"--sample {name!r} is given twice")
        if name not in field_names():
            coerce_value(name, 0)  # raises the "unknown parameter" error listing the valid ones
        space[name] = _parse_one(name, text)
    return space


def draw_points(space: Mapping[str, Distribution], n: int, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` points of ``space``: point ``i`` is the same for every ``n > i`` and the same seed.

    Raises:
        ConfigError: ``n`` below 1, or two points equal (a space too small for ``n`` points).
    """
    if not space:
        return [{}]
    if n < 1:
        raise ConfigError(f"--num-samples must be at least 1, got {n}")
    rng = random.Random(seed)
    points: list[dict[str, Any]] = []
    for _ in range(n):
        point = {name: coerce_value(name, dist.draw(rng)) for name, dist in space.items()}
        if point in points:
            raise ConfigError(
                f"--num-samples {n}: the search space drew {point} twice; widen the space or "
                "draw fewer points"
            )
        points.append(point)
    return points
