"""The segmentation prior initialisation (seg_prior_init), against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from crackkit.config import deviations, make_config
from crackkit.data.dataset import CrackDataset
from crackkit.data.folder import Sample
from crackkit.model import build_model, init_segmentation_prior, segmentation_bias
from crackkit.specs import ARCHITECTURES


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_prior_sets_the_mean_segmentation_logit(architecture):
    """FeatureNorm(1) gives the map zero mean before its bias, so after the prior the mean logit
    of every image is logit(p) exactly, whatever the weights and the input."""
    torch.manual_seed(0)
    model = build_model(architecture, 3, 64, 128).eval()
    value = init_segmentation_prior(model, 0.02)
    assert value == pytest.approx(math.log(0.02 / 0.98), abs=1e-12)
    assert float(segmentation_bias(model).detach().flatten()[0]) == pytest.approx(value, abs=1e-6)
    with torch.no_grad():
        _, seg = model(torch.rand(2, 3, 64, 128))
    means = seg.double().mean(dim=(1, 2, 3))
    assert torch.allclose(means, torch.full_like(means, value), atol=1e-4)


def test_prior_is_clamped():
    model = build_model("segdecnet", 3, 64, 128)
    assert init_segmentation_prior(model, 0.0) == pytest.approx(math.log(1e-4 / (1 - 1e-4)))
    assert init_segmentation_prior(model, 0.9) == pytest.approx(0.0)


def _sample(folder, name, crack_pixels):
    image = np.zeros((64, 128, 3), np.uint8)
    mask = np.zeros((64, 128), np.uint8)
    mask.flat[:crack_pixels] = 255
    Image.fromarray(image).save(folder / f"{name}.png")
    Image.fromarray(mask).save(folder / f"{name}_m.png")
    return Sample(folder / f"{name}.png", folder / f"{name}_m.png", crack_pixels > 0)


def test_crack_fraction_of_the_training_masks(tmp_path):
    """Two 64x128 masks with 100 and 28 crack pixels: 128 / (2 * 8192)."""
    samples = [_sample(tmp_path, "a", 100), _sample(tmp_path, "b", 28)]
    cfg = make_config({"input_height": 64, "input_width": 128})
    ds = CrackDataset(samples, cfg, train=True)
    assert ds.crack_fraction() == pytest.approx(128 / (2 * 64 * 128))


def test_the_prior_is_a_named_deviation_on_by_default_off_in_the_seed_presets():
    assert "seg_prior_init" in deviations(make_config())
    assert "seg_prior_init" in deviations(make_config(preset="cfd"))
    assert deviations(make_config(preset="crack500")) == {}
    for preset in ("crack500", "synthetic"):
        assert "seg_prior_init" not in deviations(make_config(preset=preset))
        assert make_config(preset=preset).seg_prior_init is False


@pytest.mark.parametrize("architecture", ["segdecnet", "segdecnet-up", "segdecnet++"])
def test_decision_prior_starts_at_the_segmentation_maximum(architecture):
    """dec_prior_init: the first decision logit is the maximum segmentation logit (the
    linear layer reads only that), for every published network; a named deviation."""
    import torch

    from crackkit.model import build_model, init_decision_prior

    torch.manual_seed(0)
    model = build_model(architecture, 3, 64, 128).eval()
    init_decision_prior(model)
    with torch.no_grad():
        dec, seg = model(torch.rand(2, 3, 64, 128))
    torch.testing.assert_close(dec[:, 0], seg.amax(dim=(1, 2, 3)))
    assert "dec_prior_init" in deviations(make_config({"dec_prior_init": True}))
