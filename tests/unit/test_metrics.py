"""Metrics: a hand-worked 3-class case, agreement with scikit-learn, absent classes, and seed summaries."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from models.metrics import compute_metrics
from models.table import summarise

NAMES3 = ["cyst", "hemangioma", "metastasis"]


def _probs_for(pred: list[int], k: int) -> np.ndarray:
    probs = np.full((len(pred), k), 0.4 / (k - 1))
    probs[np.arange(len(pred)), pred] = 0.6
    return probs


def test_hand_worked_three_class_example() -> None:
    y_true = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    y_pred = [0, 0, 1, 2, 1, 1, 0, 2, 2, 1]
    result = compute_metrics(y_true, _probs_for(y_pred, 3), NAMES3)
    assert result["confusion_matrix"] == [[2, 1, 1], [1, 2, 0], [0, 1, 2]]
    assert result["n"] == 10
    assert result["accuracy"] == pytest.approx(0.6)
    assert result["macro_f1"] == pytest.approx(38 / 63)
    assert result["balanced_accuracy"] == pytest.approx(11 / 18)
    expected = [
        # class, support, sensitivity, specificity, precision, f1 (worked from the matrix by hand)
        ("cyst", 4, 2 / 4, 5 / 6, 2 / 3, 4 / 7),
        ("hemangioma", 3, 2 / 3, 5 / 7, 2 / 4, 4 / 7),
        ("metastasis", 3, 2 / 3, 6 / 7, 2 / 3, 2 / 3),
    ]
    for row, (name, support, sens, spec, prec, f1) in zip(result["per_class"], expected, strict=True):
        assert row["class"] == name and row["support"] == support
        assert row["sensitivity"] == pytest.approx(sens)
        assert row["specificity"] == pytest.approx(spec)
        assert row["precision"] == pytest.approx(prec)
        assert row["f1"] == pytest.approx(f1)


@pytest.mark.parametrize("k", [2, 3, 5])
def test_agrees_with_scikit_learn(k: int) -> None:
    rng = np.random.default_rng(k)
    y_true = rng.integers(0, k, 300)
    logits = rng.normal(size=(300, k)) + 1.5 * np.eye(k)[y_true]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y_pred = probs.argmax(1)
    names = [f"c{i}" for i in range(k)]
    result = compute_metrics(y_true, probs, names)
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert result["macro_f1"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    assert result["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    if k == 2:
        assert result["auc"] == pytest.approx(skm.roc_auc_score(y_true, probs[:, 1]))
    else:
        assert result["auc"] == pytest.approx(skm.roc_auc_score(y_true, probs, multi_class="ovr"))
    recall = skm.recall_score(y_true, y_pred, average=None)
    precision = skm.precision_score(y_true, y_pred, average=None)
    f1 = skm.f1_score(y_true, y_pred, average=None)
    matrix = skm.confusion_matrix(y_true, y_pred)
    assert result["confusion_matrix"] == matrix.tolist()
    for c, row in enumerate(result["per_class"]):
        negatives = y_true != c
        assert row["sensitivity"] == pytest.approx(recall[c])
        assert row["precision"] == pytest.approx(precision[c])
        assert row["f1"] == pytest.approx(f1[c])
        assert row["specificity"] == pytest.approx(skm.recall_score(negatives, y_pred != c))
        assert row["support"] == int((y_true == c).sum())
    assert np.mean([row["f1"] for row in result["per_class"]]) == pytest.approx(result["macro_f1"])


def test_class_absent_from_y_true_gives_none_not_a_crash() -> None:
    y_true = np.array([0, 0, 2, 2, 2])  # no hemangioma in this tiny test split
    result = compute_metrics(y_true, _probs_for([0, 1, 2, 2, 0], 3), NAMES3)
    assert result["auc"] is None
    hemangioma = result["per_class"][1]
    assert hemangioma["support"] == 0 and hemangioma["sensitivity"] is None
    assert hemangioma["precision"] == 0.0 and hemangioma["specificity"] == pytest.approx(4 / 5)
    assert result["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    binary = compute_metrics(np.array([1, 1, 1]), _probs_for([1, 0, 1], 2), ["malignant", "benign"])
    assert binary["auc"] is None and binary["per_class"][0]["sensitivity"] is None
    never_predicted = compute_metrics(np.array([0, 1, 1]), _probs_for([1, 1, 1], 2), ["a", "b"])
    assert never_predicted["per_class"][0]["precision"] is None  # no positive predictions: undefined


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="probs must be"):
        compute_metrics(np.array([0, 1]), np.ones((2, 3)) / 3, ["a", "b"])
    with pytest.raises(ValueError, match="y_true must lie in 0..1"):
        compute_metrics(np.array([0, 2]), np.ones((2, 2)) / 2, ["a", "b"])


def test_summarise_mean_and_sample_std_over_seeds() -> None:
    records = [{"macro_f1": 0.7, "auc": None}, {"macro_f1": 0.8, "auc": 0.9}, {"macro_f1": 0.75, "auc": 0.8}]
    f1 = summarise([r["macro_f1"] for r in records])
    assert f1["mean"] == pytest.approx(0.75) and f1["n"] == 3
    assert f1["std"] == pytest.approx(np.std([0.7, 0.8, 0.75], ddof=1))
    auc = summarise([r["auc"] for r in records])
    assert auc["n"] == 2 and auc["mean"] == pytest.approx(0.85)
    assert summarise([0.7]) == {"mean": 0.7, "std": 0.0, "n": 1}
    assert summarise([None]) == {"mean": None, "std": None, "n": 0}
