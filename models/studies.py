"""A study's results from its run records, and several runs of one study merged into one.

``results.json`` keeps every run record with its per-image test predictions, so the summary table, the verdicts
(paired bootstrap over seeds and test images), the settings chosen on validation and the generator quality rows
can be computed again from records alone. That lets a lab run a study's seeds on several machines, or in several
sessions, and merge the results: the merged verdict is the one a single run over all the seeds gives. Torch-free.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from models.errors import clip
from models.names import ARMS
from models.profiles import profiles_of
from models.selection import selections
from models.spec import ExperimentSpec
from models.table import quality_rows, summary_rows
from models.verdict import verdicts

MAY_DIFFER = ("seeds", "figures", "device")
"""Configuration keys in which the runs of one study may differ; everything else is the study's design."""


GROWS = ("arms", "generators", "classifier_seeds_per_generator", "alpha", "mix_prob", "partner_pool", "filter_tau")
"""Keys a rerun into a study's folder may change: the new runs join the finished ones, whose ids and meaning stay
(a filtered run's id names its threshold; the fixed GenMix settings, which the un-tagged GenMix run ids stand for,
are ``genmix_fixed``: not among them)."""

JOINED = ("arms", "generators", "filter_tau")
"""Keys in which the parts of a merge may differ too: their runs have distinct ids (an arm's, a generator's, a
filtered twin's), so the merged study holds every part's runs; one filter threshold at most."""

FETCHING = ("allow_download",)
"""Nested settings of how weights may be fetched (the machine's network), not of what was trained: not compared."""

RESTATED = ("classifier", "classifier_settings")
"""The classifier as asked; ``classifier_resolved`` (what ran) is compared instead."""


class MergeError(ValueError):
    """The parts are not runs of one study, or disagree about a run they share."""


class FolderConflictError(ValueError):
    """A rerun into a study folder asks for settings other than those its finished runs were made with."""


def summarize(
    records: list[dict[str, Any]], generators: dict[str, Any], class_names: list[str], fixed_ratio: float
) -> dict[str, Any]:
    """The derived parts of ``results.json``: summary table, verdicts, selections and quality rows."""
    return {
        "summary": summary_rows(records, class_names, fixed_ratio),
        "verdicts": verdicts(records, fixed_ratio),
        "selection": selections(records),
        "quality": quality_rows(generators),
    }


def _design(config: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if key not in (*MAY_DIFFER, *JOINED)}


def _equal(a: Any, b: Any) -> Any:
    return a if a == b else None


def _extended(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any] | None:
    """A generator seed's information from two parts: what both hold must agree (one may add its filter counts)."""
    return {**a, **b} if all(a[key] == b[key] for key in a.keys() & b.keys()) else None


def _union(kind: str, parts: Sequence[tuple[str, dict[str, Any]]], items: Any, combine: Any = _equal) -> dict[str, Any]:
    """Key -> item over all parts; an item two parts share must agree (``combine`` gives None where not)."""
    merged: dict[str, Any] = {}
    where: dict[str, str] = {}
    for name, part in parts:
        for key, item in items(part):
            if key in merged:
                item = combine(merged[key], item)
                if item is None:
                    raise MergeError(f"{kind} {key} differs between {where[key]} and {name}: they are not one study's")
            merged[key] = item
            where.setdefault(key, name)
    return merged


def _same(a: Any, b: Any) -> bool:
    """Equal as designs: a nested key only one side has (an option added since) counts as its default, and how
    weights may be fetched (:data:`FETCHING`) is not compared."""
    if isinstance(a, dict) and isinstance(b, dict):
        return all(_same(a[key], b[key]) for key in (a.keys() & b.keys()) - set(FETCHING))
    return bool(a == b)


def folder_conflicts(found: dict[str, Any], asked: dict[str, Any]) -> list[str]:
    """The keys in which a folder's ``config.json`` (``found``) and a rerun's configuration (``asked``) differ in a
    way that changes what the folder's finished records mean: reusing them would report one design's numbers as
    another's (more epochs asked, the same records shown). Seeds, arms, generators, grid values and the filter may
    change."""
    ignored = {*MAY_DIFFER, *GROWS, *RESTATED}
    return sorted(key for key in found.keys() - ignored if not _same(found[key], asked.get(key)))


def check_folder(found: dict[str, Any], asked: dict[str, Any], folder: str) -> None:
    """Raise :class:`FolderConflictError` naming each differing key with the folder's and the asked value."""
    keys = folder_conflicts(found, asked)
    if keys:
        shown = "; ".join(f"{key}: {clip(found[key], 80)} here, {clip(asked.get(key), 80)} asked" for key in keys)
        raise FolderConflictError(
            f"{clip(folder)} holds runs made with other settings ({shown}); its finished runs would be reused as if "
            "made with these: choose another output folder, or rerun with the folder's settings"
        )


def _resolved_design(spec: dict[str, Any]) -> dict[str, Any]:
    """A stored experiment spec as the design its runs were made with: every field that may not change when a
    study grows, the classifier's and each generator's settings laid over the profile (an override restating a
    profile value is the same design)."""
    try:  # a job stored before a spec field existed has the field's default
        spec = ExperimentSpec.model_validate(spec).model_dump(mode="json")
    except ValidationError:
        pass  # compared as stored
    growing = {*MAY_DIFFER, *GROWS, *RESTATED, "generator_settings"}
    design = {key: spec.get(key) for key in ExperimentSpec.model_fields if key not in growing}
    profile = str(spec.get("profile"))
    chosen = {"name": spec["classifier"]} if spec.get("classifier") else {}
    design["classifier"] = {**profiles_of("classifier")[profile], **chosen, **spec.get("classifier_settings", {})}
    overrides = spec.get("generator_settings") or {}
    for name in spec.get("generators") or []:
        design[f"generator_settings.{name}"] = {**profiles_of(name)[profile], **overrides.get(name, {})}
    return design


def extension_conflicts(found: dict[str, Any], asked: dict[str, Any]) -> list[str]:
    """Why the experiment ``asked`` cannot extend the finished one ``found`` (both specs as stored, JSON values):
    each setting other than seeds, arms, generators, classifier seeds, grid values and the filter (:data:`GROWS`)
    in which they differ, with both values; a generator only one of them trains may differ in its settings. The
    same rule as :func:`folder_conflicts`, on specs instead of resolved configurations, so that a service can
    refuse an extension before it queues anything."""
    differing = sorted(_differences("", _resolved_design(found), _resolved_design(asked)))
    return [f"{key}: {clip(a, 80)} in the job extended, {clip(b, 80)} asked" for key, a, b in differing]


def _differences(prefix: str, a: Any, b: Any) -> list[tuple[str, Any, Any]]:
    """(dotted key, a's value, b's value) where two designs differ, down to the nested key (as :func:`_same`)."""
    if not (isinstance(a, dict) and isinstance(b, dict)):
        return [] if a == b else [(prefix, a, b)]
    found = []
    for key in sorted((a.keys() & b.keys()) - set(FETCHING), key=str):
        found += _differences(f"{prefix}.{key}" if prefix else str(key), a[key], b[key])
    return found


def merge_results(parts: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One ``results.json`` from runs of one study (``(name, results)`` pairs) that differ in their seeds, arms,
    generators or filter (:data:`JOINED`): seeds run on several machines, references or a filter run later.

    The design (dataset, classifier and GenMix settings) must be the same in every part; a run or a generator
    seed found in two parts must have the same record in both. Records are ordered by seed, each seed's as its
    parts planned them."""
    if not parts:
        raise MergeError("nothing to merge")
    first_name, first = parts[0]
    for name, part in parts[1:]:
        if part["dataset"] != first["dataset"]:
            raise MergeError(f"{name} is on another dataset than {first_name}")
        ours, theirs = _design(part["config"]), _design(first["config"])
        keys = sorted(k for k in ours.keys() | theirs.keys() if not _same(ours.get(k), theirs.get(k)))
        if keys:
            raise MergeError(f"{name} and {first_name} are not one study: they differ in {', '.join(keys)}")
    records = _union("run", parts, lambda part: ((r["run_id"], r) for r in part["records"]))
    generators = _union("generator", parts, lambda part: part.get("generators", {}).items(), _extended)
    ordered = sorted(records.values(), key=lambda r: r["seed"])
    seeds = sorted({seed for _, part in parts for seed in part["config"]["seeds"]})
    devices = sorted({str(part["config"].get("device")) for _, part in parts})
    taus = sorted({tau for _, part in parts if (tau := part["config"].get("filter_tau")) is not None})
    if len(taus) > 1:
        raise MergeError(f"the parts filter at different thresholds ({', '.join(map(str, taus))}): one at a time")
    config = {
        **first["config"],
        "seeds": seeds,
        "device": "+".join(devices),
        "arms": [arm for arm in ARMS if any(arm in part["config"]["arms"] for _, part in parts)],
        "generators": list(dict.fromkeys(g for _, part in parts for g in part["config"]["generators"])),
        "filter_tau": taus[0] if taus else None,
    }
    fixed_ratio = float(config["genmix_fixed"]["synthetic_ratio"])
    merged_generators = dict(sorted(generators.items(), key=lambda item: item[1]["seed"]))
    return {
        "config": config,
        "versions": first["versions"],
        "dataset": first["dataset"],
        "records": ordered,
        "generators": merged_generators,
        **summarize(ordered, merged_generators, first["dataset"]["class_names"], fixed_ratio),
        "merged_from": [
            {"part": name, "seeds": part["config"]["seeds"], "versions": part["versions"]} for name, part in parts
        ],  # fmt: skip
    }
