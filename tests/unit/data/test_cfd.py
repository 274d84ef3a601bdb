"""CrackForest helpers: crack values, the validation draw, .mat reading, id ranges."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from crackkit.data.cfd import (
    CFD,
    CFD_CRACK_VALUES,
    CFD_HOMEPAGE,
    CFD_TEST_IDS,
    _ranges,
    choose_val,
    find_cfd_base,
    parse_crack_values,
    read_segmentation,
)
from crackkit.data.folder import DatasetError


def test_record_constants():
    """The download record points at the authors' repository; the test split is 073-118."""
    assert CFD.name == "cfd" and CFD.url.startswith(CFD_HOMEPAGE) and CFD.sha256 is None
    assert CFD_HOMEPAGE == "https://github.com/cuilimeng/CrackForest-dataset"
    assert CFD_TEST_IDS == (73, 118) and CFD_CRACK_VALUES == (2, 4)


@pytest.mark.parametrize(
    ("given", "expected"), [("2,4", (2, 4)), ("4, 2", (2, 4)), ("2", (2,)), ([4, 2, 2], (2, 4))]
)
def test_parse_crack_values(given, expected):
    assert parse_crack_values(given) == expected


@pytest.mark.parametrize("given", ["", "1", "1,2", "2,5", "two", "0"])
def test_parse_crack_values_refuses(given):
    with pytest.raises(ValueError, match="crack values"):
        parse_crack_values(given)


def test_choose_val_is_seeded_sorted_and_order_free():
    """The draw depends on the seed and the set of stems, not on their order."""
    stems = [f"{i:03d}" for i in range(1, 73)]
    val = choose_val(stems)
    assert len(val) == 11 and val == sorted(val) and set(val) < set(stems)
    assert choose_val(list(reversed(stems))) == val
    assert choose_val(stems, seed=1) != val
    assert choose_val(["001", "002"]) in (["001"], ["002"])
    with pytest.raises(DatasetError, match="too few"):
        choose_val(["001"])


def test_ranges():
    assert _ranges(["001", "002", "003", "005", "201", "202"]) == "001-003, 005, 201-202"
    assert _ranges([]) == "none"


def test_read_segmentation_errors_name_the_file(tmp_path):
    """A damaged or empty .mat is refused naming the file."""
    bad = tmp_path / "001.mat"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(DatasetError, match=r"001\.mat: not a readable MATLAB v5"):
        read_segmentation(bad)
    scipy.io.savemat(bad, {"groundTruth": {"Segmentation": np.ones((2, 2, 2), np.uint8)}})
    with pytest.raises(DatasetError, match=r"001\.mat: groundTruth\.Segmentation is uint8"):
        read_segmentation(bad)


def test_find_cfd_base_looks_under_top_folders(tmp_path):
    for name in ("image", "groundTruth"):
        (tmp_path / "a" / "CrackForest-dataset-master" / name).mkdir(parents=True)
    assert find_cfd_base(tmp_path) == tmp_path / "a" / "CrackForest-dataset-master"
