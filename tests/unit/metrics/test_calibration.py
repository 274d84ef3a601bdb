"""Calibration over pixels: hand-computed ECE and scikit-learn's reliability curve as oracles."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.calibration import calibration_curve

from crackkit.evaluate import _calibration_counts, calibration_metrics


def test_hand_computed_ece_and_means():
    prob = np.array([[0.05, 0.05], [0.95, 0.55]], dtype=np.float32)
    gt = np.array([[False, True], [True, False]])
    m = calibration_metrics(_calibration_counts(prob, gt))
    # bins: 0 holds two pixels (mean .05, one crack), 9 one (.95, crack), 5 one (.55, none)
    assert m["ece"] == pytest.approx(2 / 4 * 0.45 + 1 / 4 * 0.05 + 1 / 4 * 0.55, abs=1e-6)
    assert m["mean_background_prob"] == pytest.approx(0.3, abs=1e-6)
    assert m["mean_crack_prob"] == pytest.approx(0.5, abs=1e-6)
    assert m["reliability"]["count"] == [2, 0, 0, 0, 0, 1, 0, 0, 0, 1]
    assert m["reliability"]["frequency"][1] is None


def test_reliability_agrees_with_scikit_learn_over_several_images():
    rng = np.random.default_rng(0)
    probs = [rng.random((16, 24)).astype(np.float32) for _ in range(3)]
    gts = [rng.random((16, 24)) < p for p in probs]
    total = sum(_calibration_counts(p, g) for p, g in zip(probs, gts, strict=True))
    m = calibration_metrics(total)
    y = np.concatenate([g.ravel() for g in gts])
    x = np.concatenate([p.ravel() for p in probs]).astype(np.float64)
    freq, conf = calibration_curve(y, x, n_bins=10, strategy="uniform")
    got_conf = [c for c in m["reliability"]["confidence"] if c is not None]
    got_freq = [f for f in m["reliability"]["frequency"] if f is not None]
    np.testing.assert_allclose(got_conf, conf, atol=1e-9)
    np.testing.assert_allclose(got_freq, freq, atol=1e-9)
    counts = np.array(m["reliability"]["count"])
    ece = np.sum(counts[counts > 0] / counts.sum() * np.abs(conf - freq))
    assert m["ece"] == pytest.approx(ece, abs=1e-9)
    assert m["mean_background_prob"] == pytest.approx(x[~y].mean(), abs=1e-9)
