"""Search spaces: parsing KIND:LOW:HIGH, and seeded draws that are reproducible and in range."""

from __future__ import annotations

import math

import pytest

from crackkit.config import ConfigError
from crackkit.search import Distribution, draw_points, parse_space


def test_parse_space():
    """Each distribution is read with its bounds; the text form round-trips."""
    space = parse_space(
        [
            ("lr", "loguniform:1e-5:1e-2"),
            ("momentum", "uniform:0.8:0.99"),
            ("dilate", "randint:1:5"),
        ]
    )
    assert space == {
        "lr": Distribution("loguniform", 1e-5, 1e-2),
        "momentum": Distribution("uniform", 0.8, 0.99),
        "dilate": Distribution("randint", 1, 5),
    }
    assert str(space["lr"]) == "loguniform:1e-05:0.01"
    assert parse_space([("lr", str(space["lr"]))]) == {"lr": space["lr"]}


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("lrr", "uniform:0:1")], "unknown parameter 'lrr'"),
        ([("lr", "normal:0:1")], "write KIND:LOW:HIGH"),
        ([("lr", "uniform:0.1")], "write KIND:LOW:HIGH"),
        ([("lr", "uniform:a:1")], "write KIND:LOW:HIGH"),
        ([("lr", "uniform:0.1:0.1")], "LOW must be below HIGH"),
        ([("lr", "loguniform:0:0.1")], "a log-uniform LOW must be above 0"),
        ([("dilate", "randint:1:2.5")], "randint bounds are integers"),
        ([("dilate", "uniform:1:5")], "use randint for an integer parameter"),
        ([("momentum", "uniform:0:1"), ("momentum", "uniform:0:1")], "given twice"),
        ([("seed", "randint:0:9")], "--seeds"),
    ],
)
def test_parse_space_refuses(pairs, message):
    """Malformed distributions and unknown or doubled names stop the sweep, naming them."""
    with pytest.raises(ConfigError, match=message):
        parse_space(pairs)


def test_draws_are_seeded_and_extend():
    """The same seed draws the same points; more points keep the first ones; other seeds differ."""
    space = parse_space([("lr", "loguniform:1e-5:1e-2"), ("dilate", "randint:0:9")])
    five = draw_points(space, 5, seed=3)
    assert draw_points(space, 5, seed=3) == five
    assert draw_points(space, 2, seed=3) == five[:2]
    assert draw_points(space, 5, seed=4) != five
    assert all(isinstance(p["lr"], float) and isinstance(p["dilate"], int) for p in five)


def test_loguniform_is_uniform_in_the_logarithm():
    """2000 draws of loguniform:1e-5:1e-2 put about a third in each decade, all in range, each
    kept to 4 significant digits."""
    space = parse_space([("lr", "loguniform:1e-5:1e-2")])
    lrs = [p["lr"] for p in _many(space, 2000)]
    assert all(1e-5 <= x <= 1e-2 for x in lrs)
    assert all(float(f"{x:.4g}") == x for x in lrs)
    decades = [sum(lo <= x < lo * 10 for x in lrs) for lo in (1e-5, 1e-4, 1e-3)]
    assert all(abs(n / 2000 - 1 / 3) < 0.04 for n in decades), decades
    assert abs(sum(math.log10(x) for x in lrs) / 2000 - (-3.5)) < 0.05


def test_randint_includes_both_bounds():
    """randint:1:3 draws 1, 2 and 3 and nothing else."""
    space = parse_space([("dilate", "randint:1:3")])
    assert {p["dilate"] for p in _many(space, 200)} == {1, 2, 3}


def test_too_many_points_for_a_small_space():
    """A space that cannot give n different points says so."""
    with pytest.raises(ConfigError, match="drew .* twice"):
        draw_points(parse_space([("dilate", "randint:1:2")]), 5)


def test_no_space_is_one_empty_point():
    assert draw_points({}, 7) == [{}]


def _many(space, n):
    """n draws of ``space`` by one generator (points may repeat), as draw_points makes them."""
    import random

    rng = random.Random(0)
    return [{k: d.draw(rng) for k, d in space.items()} for _ in range(n)]
