"""GenMix settings chosen on validation, never on test: the "tuned" arm of a study whose GenMix settings are lists.

When ``alpha``, ``synthetic_ratio``, ``mix_prob`` or ``partner_pool`` is a list, the pipeline trains one GenMix
classifier per combination (the *candidates*) for every generator, seed and classifier replicate, next to the
fixed (paper, α = 0.3) arm. Here, per (generator, seed, replicate), the candidate with the best **validation**
macro F1 (at its restored best epoch, ``record["val_macro_f1"]``) is chosen, and its test result becomes that
replicate's "GenMix (…), tuned on val" result. Nothing here reads a test metric or a test prediction to choose:
:func:`choose` looks at ``val_macro_f1`` and the grid order only (ties go to the earlier combination).

Torch-free, so the API builds the same table and verdicts from stored run records.
"""

from __future__ import annotations

from typing import Any

TUNED = "tuned"
"""The ``variant`` of the records of the arm tuned on validation."""
FILTERED = "filtered"
"""The ``variant`` of a synthetic arm's runs on the images the filter kept (``filter_tau``): rows of their own."""


def is_candidate(record: dict[str, Any]) -> bool:
    return bool(record.get("candidate")) and record.get("arm") == "genmix"


def is_fixed(record: dict[str, Any]) -> bool:
    """Every record but a grid combination other than the fixed one (records from before grids are fixed)."""
    return record.get("fixed", True) is not False


def _key(record: dict[str, Any]) -> tuple[Any, int, int]:
    return record.get("generator"), int(record["seed"]), int(record.get("replicate") or 0)


def choose(candidates: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The candidate with the highest validation macro F1 (the first on ties); None when none has one."""
    best, best_score = None, float("-inf")
    for record in candidates:
        score = record.get("val_macro_f1")
        if score is not None and float(score) > best_score:
            best, best_score = record, float(score)
    return best


def selections(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (generator, seed, replicate) of a grid: the chosen combination and every candidate's validation score."""
    groups: dict[tuple[Any, int, int], list[dict[str, Any]]] = {}
    for record in records:
        if is_candidate(record):
            groups.setdefault(_key(record), []).append(record)
    out = []
    for (generator, seed, replicate), candidates in groups.items():
        chosen = choose(candidates)
        out.append(
            {
                "generator": generator,
                "seed": seed,
                "replicate": replicate,
                "chosen_run_id": chosen["run_id"] if chosen else None,
                "chosen": dict(chosen.get("genmix_settings") or {}) if chosen else None,
                "candidates": [
                    {
                        "run_id": r.get("run_id"),
                        "settings": r.get("genmix_settings"),
                        "val_macro_f1": r.get("val_macro_f1"),
                    }
                    for r in candidates
                ],
            }
        )
    return out


def study_records(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records a study's table and verdicts compare, from raw run records: every fixed-arm record, plus one
    "tuned on val" record per (generator, seed, replicate) of a grid (a copy of the chosen candidate with
    ``variant = "tuned"``). Candidates other than the fixed combination are not rows of their own: reading the
    best of them off the test set would be choosing on test."""
    chosen = {s["chosen_run_id"] for s in selections(records) if s["chosen_run_id"] is not None}
    out = []
    for record in records:
        if record.get("variant") == TUNED:
            continue
        if is_fixed(record):
            out.append(record)
        if is_candidate(record) and record.get("run_id") in chosen:
            out.append(
                {**record, "variant": TUNED, "fixed": False, "candidate": False, "chosen_from": record["run_id"]}
            )
    return out
