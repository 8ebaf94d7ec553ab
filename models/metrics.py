"""Classification metrics for small, imbalanced sets: macro F1 and per-class sensitivity, not accuracy alone.

All numbers come from scikit-learn; this module only fixes the conventions (which labels, what happens
when a class is absent) so every report computes them the same way. Undefined values are ``None``,
never a silent 0 or NaN, so a JSON report says "not measurable" rather than "zero".
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
    roc_auc_score,
)


def _ratio(numerator: int, denominator: int) -> float | None:
    return float(numerator) / denominator if denominator else None


def _auc(y_true: np.ndarray, probs: np.ndarray, num_classes: int) -> float | None:
    """Binary: ROC AUC of the positive class; multiclass: one-vs-rest macro. None when a class is absent."""
    present = np.unique(y_true)
    if len(present) < num_classes:
        return None
    if num_classes == 2:
        return float(roc_auc_score(y_true, probs[:, 1]))
    return float(roc_auc_score(y_true, probs, multi_class="ovr", average="macro", labels=list(range(num_classes))))


def compute_metrics(y_true: np.ndarray, probs: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro F1, balanced accuracy, AUC, per-class sensitivity/specificity/precision/F1, confusion.

    ``y_true`` int (N,), ``probs`` (N, K) class probabilities (rows sum to 1), K = ``len(class_names)``.
    Per-class F1 follows scikit-learn (0 when undefined) so ``macro_f1`` is their mean; sensitivity,
    specificity and precision are ``None`` when their denominator is 0.
    """
    y_true = np.asarray(y_true).astype(np.int64).ravel()
    probs = np.asarray(probs, dtype=np.float64)
    num_classes = len(class_names)
    if probs.ndim != 2 or probs.shape != (len(y_true), num_classes):
        raise ValueError(f"probs must be (N, K) = ({len(y_true)}, {num_classes}), got {probs.shape}")
    if len(y_true) == 0:
        raise ValueError("no samples to score")
    if y_true.min() < 0 or y_true.max() >= num_classes:
        raise ValueError(f"y_true must lie in 0..{num_classes - 1}")
    labels = list(range(num_classes))
    y_pred = probs.argmax(axis=1)
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    total = int(matrix.sum())
    per_class = []
    for k, name in enumerate(class_names):
        tp = int(matrix[k, k])
        fn = int(matrix[k].sum()) - tp
        fp = int(matrix[:, k].sum()) - tp
        tn = total - tp - fn - fp
        per_class.append(
            {
                "class": str(name),
                "support": int(support[k]),
                "sensitivity": _ratio(tp, tp + fn),
                "specificity": _ratio(tn, tn + fp),
                "precision": _ratio(tp, tp + fp),
                "f1": float(f1[k]),
            }
        )
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true": expected on tiny test sets
        warnings.simplefilter("ignore", UserWarning)
        balanced = float(balanced_accuracy_score(y_true, y_pred))  # mean recall over classes in y_true
    return {
        "n": int(len(y_true)),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "balanced_accuracy": balanced,
        "auc": _auc(y_true, probs, num_classes),
        "per_class": per_class,
        "confusion_matrix": matrix.astype(int).tolist(),
    }
