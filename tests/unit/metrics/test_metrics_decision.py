"""Image-level decision metrics against scikit-learn."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import (
    auc,
    average_precision_score,
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)

from crackkit.metrics import decision_metrics

ATOL = 1e-12


def random_labels_scores(seed: int, n: int = 40, decimals: int = 2):
    """Both classes present; scores rounded so that many are tied."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    labels[:2] = [0, 1]
    scores = np.clip(rng.normal(0.35 + 0.3 * labels, 0.2), 0, 1).round(decimals)
    return labels, scores


def sklearn_confusion(labels, scores, threshold):
    """(tn, fp, fn, tp) from sklearn's confusion matrix at ``score >= threshold``."""
    return confusion_matrix(labels, scores >= threshold, labels=[0, 1]).ravel().tolist()


@pytest.mark.parametrize("seed", range(6))
def test_threshold_free_metrics_equal_sklearn(seed):
    """Step-wise AP (average_precision_score), trapezoidal AP, ROC AUC and the PR curve are
    exactly scikit-learn's."""
    labels, scores = random_labels_scores(seed)
    m = decision_metrics(labels, scores)
    precision, recall, thresholds = precision_recall_curve(labels, scores)
    assert m.ap_step == average_precision_score(labels, scores)
    assert m.ap_trapezoid == auc(recall, precision)
    assert m.auc == roc_auc_score(labels, scores)
    assert m.pr_precision == precision.tolist()
    assert m.pr_recall == recall.tolist()
    assert m.pr_thresholds == thresholds.tolist()
    assert m.notes == []


@pytest.mark.parametrize("seed", range(6))
def test_best_f_threshold_is_the_lowest_maximiser(seed):
    """The default threshold maximises sklearn's F1 over the PR thresholds, lowest on ties."""
    labels, scores = random_labels_scores(seed)
    m = decision_metrics(labels, scores)
    _, _, thresholds = precision_recall_curve(labels, scores)
    f1s = np.array([f1_score(labels, scores >= t, zero_division=0) for t in thresholds])
    assert m.f1 == pytest.approx(f1s.max(), abs=ATOL)
    first = thresholds[np.flatnonzero(f1s >= f1s.max() - ATOL)[0]]
    assert m.threshold == first


@pytest.mark.parametrize("threshold", [None, 0.0, 0.3, 0.5, 0.71, 1.0])
@pytest.mark.parametrize("seed", range(3))
def test_operating_point_equals_sklearn(seed, threshold):
    """Confusion counts, precision, recall, F1 and accuracy equal scikit-learn's."""
    labels, scores = random_labels_scores(seed)
    m = decision_metrics(labels, scores, threshold)
    pred = scores >= m.threshold
    assert [m.tn, m.fp, m.fn, m.tp] == sklearn_confusion(labels, scores, m.threshold)
    assert m.precision == pytest.approx(precision_score(labels, pred, zero_division=0), abs=ATOL)
    assert m.recall == pytest.approx(recall_score(labels, pred, zero_division=0), abs=ATOL)
    assert m.f1 == pytest.approx(f1_score(labels, pred, zero_division=0), abs=ATOL)
    assert m.accuracy == pytest.approx(np.mean(pred == labels), abs=ATOL)
    if threshold is not None:
        assert m.threshold == threshold


def test_hand_built_example():
    """Scores 0.9/0.5/0.1 positive, 0.2/0.5 negative: best F1 0.75 at 0.1, AP 0.7556."""
    m = decision_metrics([0, 1, 1, 0, 1], [0.2, 0.9, 0.5, 0.5, 0.1])
    assert (m.threshold, m.tp, m.fp, m.fn, m.tn) == (0.1, 3, 2, 0, 0)
    assert m.f1 == 0.75 and m.precision == 0.6 and m.recall == 1.0 and m.accuracy == 0.6
    assert m.ap_step == pytest.approx(0.7555555555555555, abs=ATOL)
    assert m.auc == pytest.approx(7 / 12, abs=ATOL)


def test_tie_goes_to_the_lowest_threshold():
    """F1 is 2/3 at both 0.5 and 0.9; the lower threshold 0.5 is chosen."""
    m = decision_metrics([1, 0, 0, 1], [0.9, 0.7, 0.6, 0.5])
    assert m.threshold == 0.5 and (m.tp, m.fp, m.fn, m.tn) == (2, 2, 0, 0)
    assert m.f1 == pytest.approx(2 / 3, abs=ATOL)


def test_score_equal_to_threshold_is_positive():
    """A score exactly at the given threshold is predicted positive."""
    m = decision_metrics([1, 0, 1], [0.5, 0.5, 0.2], threshold=0.5)
    assert (m.tp, m.fp, m.fn, m.tn) == (1, 1, 1, 0)


@pytest.mark.filterwarnings("error")
def test_only_positive_labels():
    """All-crack labels: AUC is None with a note, AP is sklearn's 1.0, no warning, no crash."""
    m = decision_metrics([1, 1, 1], [0.2, 0.6, 0.9])
    assert m.auc is None and m.ap_step == 1.0 and m.ap_trapezoid is not None
    assert any("ROC AUC" in note for note in m.notes)
    assert m.recall == 1.0 and m.threshold == 0.2


@pytest.mark.filterwarnings("error")
def test_only_negative_labels():
    """No crack label: AP, trapezoidal AP and AUC are None with notes; F1 is 0."""
    m = decision_metrics([0, 0], [0.3, 0.8])
    assert m.ap_step is None and m.ap_trapezoid is None and m.auc is None
    assert len(m.notes) == 3 and m.f1 == 0.0 and m.tp == 0
    assert json.loads(json.dumps(m.to_dict()))["auc"] is None


def test_to_dict_is_json_ready():
    """to_dict holds plain floats, ints, lists and None, with the curve under 'curve'."""
    labels, scores = random_labels_scores(0)
    out = decision_metrics(labels, scores).to_dict()
    assert json.loads(json.dumps(out)) == out
    assert set(out["curve"]) == {"precision", "recall", "thresholds"}
    assert all(
        type(out[k]) is float for k in ("precision", "ap_step", "ap_trapezoid", "auc", "threshold")
    )
    assert all(type(out[k]) is int for k in ("tp", "fp", "fn", "tn"))
    assert "curve" not in decision_metrics(labels, scores).to_dict(curve=False)


def test_torch_and_bool_inputs_match_numpy():
    """Torch tensors and boolean labels give the same result as numpy arrays."""
    labels, scores = random_labels_scores(1)
    ref = decision_metrics(labels, scores).to_dict()
    assert decision_metrics(torch.tensor(labels), torch.tensor(scores)).to_dict() == ref
    assert decision_metrics(labels.astype(bool), scores).to_dict() == ref


@pytest.mark.parametrize(
    ("labels", "scores", "threshold", "match"),
    [
        ([], [], None, "labels is empty"),
        ([[0, 1]], [[0.1, 0.2]], None, "labels must be 1-D"),
        ([0, 1], [[0.1, 0.2]], None, "scores must be 1-D"),
        ([0, 1, 1], [0.1, 0.2], None, "same length"),
        ([0, 2], [0.1, 0.2], None, "labels must be binary"),
        ([0, 1], [0.1, np.nan], None, "scores contains NaN"),
        ([0, 1], [0.1, 1.5], None, r"scores must lie in \[0, 1\]"),
        ([0, 1], [0.1, 0.2], float("nan"), "threshold must be finite"),
    ],
)
def test_invalid_inputs_raise(labels, scores, threshold, match):
    """Malformed inputs raise ValueError naming the argument."""
    with pytest.raises(ValueError, match=match):
        decision_metrics(labels, scores, threshold)
