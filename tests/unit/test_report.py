"""Table 1 aggregation and paired comparisons compute what they claim."""

from __future__ import annotations

import pytest

from models.report import genmix_comparisons, markdown_report, paired_comparison, reference_comparisons
from models.table import format_table, summary_rows


def _record(arm: str, generator: str | None, seed: int, f1: float) -> dict:
    per_class = [{"class": c, "sensitivity": f1, "specificity": 1 - f1} for c in ("a", "b")]
    metrics = {"accuracy": f1, "macro_f1": f1, "balanced_accuracy": f1, "auc": None, "per_class": per_class}
    return {"arm": arm, "generator": generator, "seed": seed, "metrics": metrics}


RECORDS = [_record("baseline", None, s, v) for s, v in enumerate([0.6, 0.7, 0.8])] + [
    _record("genmix", "dcgan", s, v) for s, v in enumerate([0.7, 0.7, 0.9])
]


def test_summary_rows_average_over_seeds() -> None:
    rows = summary_rows(RECORDS, ["a", "b"], 0.5)
    assert [r["label"] for r in rows] == ["Baseline (Real)", "GenMix (DCGAN)"]
    assert rows[0]["macro_f1"]["mean"] == pytest.approx(0.7) and rows[0]["macro_f1"]["std"] == pytest.approx(0.1)
    assert rows[0]["auc"] == {"mean": None, "std": None, "n": 0}
    assert rows[1]["per_class"][1]["specificity"]["mean"] == pytest.approx(1 - 0.7667, abs=1e-3)
    table = format_table(rows, ["a", "b"])
    assert "70.0±10.0" in table and "n/a" in table


def test_summary_rows_do_not_depend_on_the_order_records_arrive_in() -> None:
    """Units of a fanned-out job finish in any order: the rows (seeds listed, means summed) are the same."""
    shuffled = [RECORDS[i] for i in (4, 2, 0, 5, 1, 3)]
    assert summary_rows(shuffled, ["a", "b"], 0.5) == summary_rows(RECORDS, ["a", "b"], 0.5)
    assert summary_rows(shuffled, ["a", "b"], 0.5)[1]["seeds"] == [0, 1, 2]


def test_paired_comparison_pairs_by_seed() -> None:
    result = paired_comparison(RECORDS, ("genmix", "dcgan"), ("baseline", None))
    assert result is not None
    assert result["mean_diff"] == pytest.approx(0.0667, abs=1e-3)
    assert result["wins"] == 2 and result["seeds"] == [0, 1, 2]
    assert 0.0 < result["p_value"] < 1.0
    assert paired_comparison(RECORDS, ("genmix", "dcgan"), ("mixup", None)) is None


def _results(records: list[dict]) -> dict:
    return {
        "dataset": {
            "name": "toy",
            "image_size": [28, 28],
            "channels": 1,
            "class_names": ["a", "b"],
            "counts": {"train": [1, 2], "val": [1, 1], "test": [1, 1]},
        },
        "config": {
            "seeds": [0, 1, 2],
            "synthetic_ratio": 0.5,
            "alpha": 0.3,
            "beta": 1.0,
            "partner_pool": "real+synthetic",
            "device": "cpu",
            "classifier_resolved": {
                "name": "smallcnn",
                "epochs": 3,
                "batch_size": 8,
                "lr": 0.001,
                "patience": 2,
                "monitor": "val_loss",
            },
        },
        "records": records,
        "summary": summary_rows(records, ["a", "b"], 0.5),
    }


def test_markdown_report_names_the_command_and_comparisons() -> None:
    text = markdown_report(_results(RECORDS), "genmix run --dataset toy.npz")
    assert "`genmix run --dataset toy.npz`" in text
    assert "| GenMix (DCGAN) | Baseline (Real) | +6.7 |" in text
    assert len(genmix_comparisons(RECORDS)) == 1
    assert "real-data augmentation" not in text and "Generator quality" not in text  # no such arm, no quality


def test_real_data_references_are_compared_with_the_baseline_with_an_interval() -> None:
    """MixUp 3 points above the baseline on every seed but one (known differences): mean, t interval, wins."""
    gains = [0.03, 0.04, 0.02, 0.03, 0.03]
    records = [_record("baseline", None, s, 0.6 + s / 100) for s in range(5)]
    records += [_record("mixup", None, s, 0.6 + s / 100 + g) for s, g in enumerate(gains)]
    records += [_record("genmix", "dcgan", s, 0.6) for s in range(5)]
    (found,) = reference_comparisons(records)  # AUC is undefined in these records: macro F1 only
    assert found["target"] == "MixUp (Real)" and found["mean_diff"] == pytest.approx(0.03)
    low, high = found["interval"]
    half = 2.776 * 0.00707 / 5**0.5  # t(0.975, 4) × std of the gains / √5
    assert low == pytest.approx(0.03 - half, abs=1e-4) and high == pytest.approx(0.03 + half, abs=1e-4)
    assert found["wins"] == 5
    line = "MixUp (Real) vs Baseline (Real): +3.0 macro F1 [+2.1, +3.9] over 5 paired runs (t interval; not a verdict)"
    assert found["line"] == line
    text = markdown_report(_results(records), "genmix run")
    assert f"| MixUp (Real) | macro F1 | +3.0 [{low * 100:+.1f}, {high * 100:+.1f}] | 5/5 |" in text
    assert "| GenMix (DCGAN) | MixUp (Real) | -5.0 |" in text  # the GenMix table keeps MixUp as a reference
