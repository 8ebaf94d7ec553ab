"""The paper's Table 1 from run records: one row per arm (and generator), mean ± std over seeds.

No torch here, so the service can build the same table from stored records.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from models.names import ARMS
from models.selection import FILTERED, TUNED, study_records

ARM_LABELS = {"baseline": "Baseline (Real)", "mixup": "MixUp (Real)", "augmix": "AugMix (Real)"}
GENERATOR_LABELS = {
    "dcgan": "DCGAN",
    "stylegan": "StyleGAN",
    "diffusion": "Diffusion Model",
    "textual_inversion": "Textual Inversion",
}
HEADLINE = ("accuracy", "macro_f1", "balanced_accuracy", "auc")
VARIANT_LABELS = {FILTERED: "filtered", TUNED: "tuned on val"}
"""Row labels of an arm's variants, in the order their rows follow the arm's own row."""


def summarise(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """Mean ± std of one metric over runs (e.g. seeds); std uses ddof=1 when n > 1, else 0.

    ``None`` and NaN values (e.g. an undefined AUC) are left out and not counted.
    """
    values = [float(v) for v in values if v is not None and not math.isnan(float(v))]
    if not values:
        return {"mean": None, "std": None, "n": 0}
    array = np.asarray(values)
    std = float(array.std(ddof=1)) if len(array) > 1 else 0.0
    return {"mean": float(array.mean()), "std": std, "n": len(array)}


def row_label(arm: str, generator: str | None, ratio: float, variant: str | None = None) -> str:
    """``Baseline (Real)``, ``DCGAN (50%)``, ``GenMix (DCGAN)`` as in the paper's Table 1; the GenMix arm whose
    settings were chosen on validation is ``GenMix (DCGAN), tuned on val``, a run on the images the synthetic
    filter kept ``GenMix (DCGAN), filtered``."""
    if generator is None:
        return ARM_LABELS.get(arm, arm)
    name = GENERATOR_LABELS.get(generator, generator)
    return with_variant(f"GenMix ({name})" if arm == "genmix" else f"{name} ({ratio * 100:.0f}%)", variant)


def with_variant(label: str, variant: str | None) -> str:
    """``label`` with its variant's suffix (``…, filtered``, ``…, tuned on val``); as it is for the plain arm."""
    return f"{label}, {VARIANT_LABELS[variant]}" if variant in VARIANT_LABELS else label


def _arm_rank(arm: str) -> int:
    return ARMS.index(arm) if arm in ARMS else len(ARMS)  # type: ignore[arg-type]


def summary_rows(records: list[dict[str, Any]], class_names: list[str], ratio: float) -> list[dict[str, Any]]:
    """Aggregate raw run records by (arm, generator, variant): arms in Table 1's order (``models.names.ARMS``), each
    arm's generators in the order they first appear, the fixed arm before its filtered twin and the one tuned on
    validation, so the table reads the same however the runs' records arrived (one worker or several).

    The records are first turned into the study's (:func:`models.selection.study_records`): GenMix combinations of
    a list-valued grid are not rows; the one chosen on validation per seed makes the "tuned on val" row. ``seeds``
    lists each run's seed (repeated when a seed has several classifier seeds), ``classifier_seeds`` its classifier's.
    """
    groups: dict[tuple[str, str | None, str | None], list[dict[str, Any]]] = {}
    for record in study_records(records):
        groups.setdefault((record["arm"], record.get("generator"), record.get("variant")), []).append(record)
    first = {key: index for index, key in enumerate(groups)}

    def rank(key: tuple[str, str | None, str | None]) -> tuple[int, int, int]:
        arm, generator, variant = key
        order = 1 + list(VARIANT_LABELS).index(variant) if variant in VARIANT_LABELS else 0
        return _arm_rank(arm), first.get((arm, generator, None), first[key]), order

    order = sorted(groups, key=rank)
    rows = []
    for arm, generator, variant in order:  # each row's runs by seed, so its seeds and sums never follow arrival
        group = sorted(groups[(arm, generator, variant)], key=lambda r: (int(r["seed"]), int(r.get("replicate") or 0)))
        row: dict[str, Any] = {
            "label": row_label(arm, generator, ratio, variant),
            "arm": arm,
            "generator": generator,
            "variant": variant,
            "seeds": [r["seed"] for r in group],
            "classifier_seeds": [r.get("classifier_seed", r["seed"]) for r in group],
        }
        for key in HEADLINE:
            row[key] = summarise([r["metrics"][key] for r in group])
        row["per_class"] = [
            {
                "class": name,
                "sensitivity": summarise([r["metrics"]["per_class"][k]["sensitivity"] for r in group]),
                "specificity": summarise([r["metrics"]["per_class"][k]["specificity"] for r in group]),
            }
            for k, name in enumerate(class_names)
        ]
        rows.append(row)
    return rows


def _cell(stat: dict[str, Any], scale: float = 100.0) -> str:
    if stat["mean"] is None:
        return "n/a"
    if stat["n"] > 1:
        return f"{stat['mean'] * scale:.1f}±{stat['std'] * scale:.1f}"
    return f"{stat['mean'] * scale:.1f}"


def format_table(rows: list[dict[str, Any]], class_names: list[str], markdown: bool = False) -> str:
    """Text (or Markdown) table in percent: Acc, F1 (macro), BalAcc, AUC, then Sens/Spec per class."""
    header = ["Method", "Acc.", "F1", "BalAcc", "AUC"]
    for name in class_names:
        header += [f"{name} Sens.", f"{name} Spec."]
    body = []
    for row in rows:
        cells = [row["label"]] + [_cell(row[key]) for key in HEADLINE]
        for per in row["per_class"]:
            cells += [_cell(per["sensitivity"]), _cell(per["specificity"])]
        body.append(cells)
    return _layout(header, body, markdown)


def _layout(header: list[str], body: list[list[str]], markdown: bool) -> str:
    """Markdown, or plain text with aligned columns."""
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(cells) + " |" for cells in body]
        return "\n".join(lines)
    widths = [max(len(str(c[i])) for c in [header, *body]) for i in range(len(header))]
    fmt = "  ".join(f"{{:<{w}}}" if i == 0 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*header), fmt.format(*["-" * w for w in widths])]
    lines += [fmt.format(*cells) for cells in body]
    return "\n".join(lines)


QUALITY_KEYS = ("kid_mean", "diversity_ratio", "memorised_share", "closer_than_any_real_share")


def quality_rows(generators: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Generator quality per generator, mean ± std over seeds (from ``results["generators"]``)."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for info in generators.values():
        if "quality" in info:
            grouped.setdefault(info["generator"], []).append(info["quality"])
    rows = []
    for generator, reports in grouped.items():
        row: dict[str, Any] = {
            "generator": generator,
            "label": GENERATOR_LABELS.get(generator, generator),
            "feature_net": reports[0].get("feature_net"),
        }
        for key in QUALITY_KEYS:
            row[key] = summarise([r.get(key) for r in reports])
        rows.append(row)
    return rows


def format_quality(rows: list[dict[str, Any]], markdown: bool = False) -> str:
    """KID (×1000), diversity ratio (synthetic / real, 1 = as diverse) and memorised shares (percent)."""
    header = ["Generator", "KID ×1000", "Diversity ratio", "Memorised %", "Closer than any real %"]
    scales = {"kid_mean": 1000.0, "diversity_ratio": 1.0, "memorised_share": 100.0, "closer_than_any_real_share": 100.0}
    body = []
    for row in rows:
        cells = [row["label"]]
        for key in QUALITY_KEYS:
            stat = row[key]
            digits = 2 if key == "diversity_ratio" else 1
            if stat["mean"] is None:
                cells.append("n/a")
            elif stat["n"] > 1:
                cells.append(f"{stat['mean'] * scales[key]:.{digits}f}±{stat['std'] * scales[key]:.{digits}f}")
            else:
                cells.append(f"{stat['mean'] * scales[key]:.{digits}f}")
        body.append(cells)
    return _layout(header, body, markdown)
