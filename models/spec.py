"""The experiment spec, written once: every entrance (the API's ``POST /jobs``, ``genmix run``, the worker, the
web form via ``/openapi.json``) derives from :class:`ExperimentSpec` and its defaults, and it is validated
completely here, so a spec that would fail (or run for ever) in a worker is refused at the door.

Torch-free (pydantic only), so the API process can validate without loading the science stack.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from models.errors import clip
from models.names import (
    ARMS,
    GENERATIVE_ARMS,
    GENERATORS,
    Arm,
    ClassifierName,
    Device,
    GeneratorName,
    PartnerPool,
    Profile,
)
from models.profiles import check_settings

GENMIX_ALPHA = 0.3
"""The paper's α: GenMix draws the partner's weight λ ~ Beta(α, β)."""
GENMIX_BETA = 1.0
"""The paper's β (Beta(α, 1))."""
MIXUP_ALPHA = 0.3
"""The MixUp baseline's α (λ ~ Beta(α, α)); the paper compares against MixUp at the same α as GenMix."""
SYNTHETIC_RATIO = 0.5
"""Synthetic images per real image, per class, for the generator-alone arm."""
PARTNER_POOL: PartnerPool = "real+synthetic"
MIX_PROB = 1.0
MAX_SEEDS = 50
CLASSIFIER_SEEDS_PER_GENERATOR = 1
"""Classifier seeds per generator seed (1: one classifier per arm and seed, as in the paper)."""
MAX_CLASSIFIER_SEEDS = 20
MAX_GRID_VALUES = 8
"""At most this many values in one list-valued GenMix setting."""
MAX_GRID = 32
"""At most this many GenMix setting combinations (the product of the list lengths)."""
MAX_CLASSIFIER_RUNS = 2000
"""At most this many classifiers in one experiment."""

GRID_FIELDS = ("alpha", "synthetic_ratio", "mix_prob", "partner_pool")
"""The GenMix settings that accept a list: the study then picks one combination per seed on validation."""
PAPER_SETTINGS: dict[str, Any] = {
    "alpha": GENMIX_ALPHA,
    "synthetic_ratio": SYNTHETIC_RATIO,
    "mix_prob": MIX_PROB,
    "partner_pool": PARTNER_POOL,
}
"""The fixed GenMix arm's value of a setting given as a list (the paper's α = 0.3 and the spec's defaults)."""
_BOUNDS: dict[str, tuple[float, bool, float]] = {
    # field: (low, low is exclusive, high inclusive)
    "alpha": (0.0, True, 100.0),
    "synthetic_ratio": (0.0, True, 10.0),
    "mix_prob": (0.0, False, 1.0),
}
_POOLS = ("real+synthetic", "synthetic")


def classifier_seed(seed: int, replicate: int) -> int:
    """The classifier seed of replicate ``replicate`` of generator seed ``seed``: the seed itself for replicate 0
    (so one classifier per seed trains exactly as before), else a hash of both (in 0..2**31-1). Every arm gets the
    same classifier seed for the same (seed, replicate), so comparisons stay paired."""
    if replicate == 0:
        return int(seed)
    digest = hashlib.sha256(f"genmix-classifier:{int(seed)}:{int(replicate)}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def fixed_setting(field: str, value: Any) -> Any:
    """The value the fixed (paper) GenMix arm uses for a grid field: a single value as given, a list's
    :data:`PAPER_SETTINGS` value."""
    return PAPER_SETTINGS[field] if isinstance(value, list) else value


def _check_grid_value(field: str, value: Any) -> None:
    if field == "partner_pool":
        if value not in _POOLS:
            raise ValueError(f"Input should be {' or '.join(map(repr, _POOLS))} (got {value!r})")
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        return  # pydantic's own type error follows
    low, exclusive, high = _BOUNDS[field]
    if not math.isfinite(value):
        raise ValueError("Input should be a finite number")
    if (value <= low) if exclusive else (value < low):
        raise ValueError(f"Input should be greater than {'' if exclusive else 'or equal to '}{low:g}")
    if value > high:
        raise ValueError(f"Input should be less than or equal to {high:g}")


class PlannedRun(NamedTuple):
    """One classifier the experiment trains.

    ``seed`` is the generator seed (the generator of that seed supplies the synthetic images), ``replicate``
    the classifier replicate j < k of that seed, trained with ``classifier_seed``. ``genmix`` holds the GenMix
    settings of a GenMix run (the synthetic ratio alone for the generator-alone arm); ``fixed`` marks the
    fixed (paper) combination, ``candidate`` a combination of a list-valued grid (both can hold); ``filtered``
    a synthetic arm's run on the images the filter kept (``filter_tau``), next to the same arm unfiltered.
    """

    arm: str
    generator: str | None
    seed: int
    replicate: int
    classifier_seed: int
    genmix: dict[str, Any] | None
    fixed: bool = True
    candidate: bool = False
    filtered: bool = False


LOCAL_FILES = "local_files"
"""Validation context key: ``ExperimentSpec.model_validate(data, context={LOCAL_FILES: True})`` lets an entrance
run by the machine's own user (``genmix run``) name local files and folders in the file settings below. Every
other entrance (``POST /jobs``, and so the worker) may only *name* one of the server's checkpoints."""
FILE_SETTINGS: dict[str, tuple[str, ...]] = {
    "classifier": ("weights",),
    "diffusion": ("pretrained_dir",),
    "textual_inversion": ("pretrained_dir",),
}
"""Settings that name weights on disk: a checkpoint name, resolved by the server (``core.jobspec``)."""
SERVER_ONLY_SETTINGS: dict[str, tuple[str, ...]] = {"textual_inversion": ("allow_download",)}
"""Settings only the server decides (``GENMIX_ALLOW_DOWNLOADS``); a request may not carry them."""
CHECKPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
"""A checkpoint name: one entry of the server's checkpoint folder, never a path (no ``/``, no leading dot)."""
MAX_NESTING = 16
"""Deepest nesting of lists and objects a spec may have."""


def _unstorable(value: Any, where: str = "", depth: int = 0) -> str | None:
    """Why ``value`` cannot be a spec value (NaN / Infinity, a NUL character, too deep), or None."""
    if depth > MAX_NESTING:
        return f"{where or 'spec'}: nested more than {MAX_NESTING} levels deep"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{where or 'spec'}: must be a finite number (NaN, Infinity and numbers beyond 1.8e308 are not)"
    if isinstance(value, str) and "\x00" in value:
        return f"{where or 'spec'}: NUL characters are not allowed"
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{where}.{clip(key, 60)}" if where else clip(key, 60)
            problem = _unstorable(key, inner, depth + 1) or _unstorable(item, inner, depth + 1)
            if problem:
                return problem
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            problem = _unstorable(item, f"{where}[{index}]", depth + 1)
            if problem:
                return problem
    return None


def file_setting_problems(kind: str, values: dict[str, Any], where: str) -> list[str]:
    """What a request (not a local entrance) may not say in ``kind``'s settings: paths, server-only switches."""
    problems = []
    for key in FILE_SETTINGS.get(kind, ()):
        value = values.get(key)
        if value is not None and not (isinstance(value, str) and CHECKPOINT_NAME.match(value)):
            problems.append(
                f"{where}.{key}: name one of the server's checkpoints (letters, digits, '.', '_' and '-', at most "
                f"128), not a path or hub id; got {clip(value, 60)!r}"
            )
    for key in SERVER_ONLY_SETTINGS.get(kind, ()):
        if key in values:
            problems.append(f"{where}.{key}: is decided by the server (GENMIX_ALLOW_DOWNLOADS), not by a request")
    return problems


class ExperimentSpec(BaseModel):
    """An experiment: generators × arms × seeds. ``classifier_settings`` / ``generator_settings`` override the
    profile's hyperparameters key by key (unknown keys, wrong types and values out of bounds are refused)."""

    # Mutable defaults below are copied per instance by pydantic; plain values (not factories) keep them in the
    # OpenAPI schema, which is where the web form reads them.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    generators: list[GeneratorName] = Field(
        default=["dcgan"], max_length=len(GENERATORS), description="generators to train"
    )
    arms: list[Arm] = Field(list(ARMS), min_length=1, description="arms of Table 1")
    synthetic_ratio: float | list[float] = Field(
        SYNTHETIC_RATIO,
        description="synthetic per real image (0 < r ≤ 10); a list: chosen per seed on validation",
    )
    alpha: float | list[float] = Field(
        GENMIX_ALPHA,
        description="GenMix: λ ~ Beta(alpha, beta) (0 < α ≤ 100); a list: chosen per seed on validation",
    )
    beta: float = Field(GENMIX_BETA, gt=0.0, le=100.0, description="GenMix: the Beta's second parameter")
    mixup_alpha: float = Field(MIXUP_ALPHA, gt=0.0, le=100.0, description="MixUp baseline: λ ~ Beta(α, α)")
    partner_pool: PartnerPool | list[PartnerPool] = Field(
        PARTNER_POOL, description="where GenMix partners x_S come from; a list: chosen per seed on validation"
    )
    class_balanced: bool = Field(False, description="draw the GenMix partner's class uniformly")
    mix_prob: float | list[float] = Field(
        MIX_PROB,
        description="share of training samples GenMix mixes (0 to 1); a list: chosen per seed on validation",
    )
    profile: Profile = Field(
        "quick",
        description="hyperparameter profile: quick (CPU, from scratch), pretrained (CPU, ImageNet "
        "EfficientNet-Lite0) or paper (VGG-16)",
    )
    classifier: ClassifierName | None = Field(None, description="classifier network; default: the profile's")
    classifier_settings: dict[str, Any] = Field(
        {}, description="classifier hyperparameters over the profile, e.g. {'epochs': 10}"
    )
    generator_settings: dict[GeneratorName, dict[str, Any]] = Field(
        {},
        description="per-generator hyperparameters over the profile, e.g. {'dcgan': {'iterations': 500}}",
    )
    seeds: list[int] = Field(
        [0], min_length=1, max_length=MAX_SEEDS, description="seeds: one generator training per seed and generator"
    )
    classifier_seeds_per_generator: int = Field(
        CLASSIFIER_SEEDS_PER_GENERATOR,
        ge=1,
        le=MAX_CLASSIFIER_SEEDS,
        description="classifier seeds per seed (k): each generator trains once, each arm trains k classifiers",
    )
    filter_tau: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="also run each synthetic arm without the synthetic images the same seed's baseline "
        "classifier gives their class a probability below this, next to the unfiltered arm (off when empty)",
    )
    device: Device = Field("auto", description="auto takes CUDA when the worker has it")
    figures: bool = Field(True, description="draw sample grids, t-SNE, confusion matrices and curves")

    @field_validator("arms", "generators", "seeds")
    @classmethod
    def _unique(cls, value: list[Any]) -> list[Any]:
        if len(set(value)) != len(value):
            raise ValueError("must not repeat items")
        return value

    @field_validator(*GRID_FIELDS)
    @classmethod
    def _grid(cls, value: Any, info: ValidationInfo) -> Any:
        """One value, or a list of distinct values (each within the field's bounds); a one-item list is a value."""
        if not isinstance(value, list):
            _check_grid_value(info.field_name, value)
            return value
        if not value:
            raise ValueError("List should have at least 1 item")
        if len(value) > MAX_GRID_VALUES:
            raise ValueError(f"List should have at most {MAX_GRID_VALUES} items")
        for item in value:
            _check_grid_value(info.field_name, item)
        if len(set(value)) != len(value):
            raise ValueError("must not repeat items")
        if len({f"{v:g}" if isinstance(v, float) else v for v in value}) != len(value):  # they name the runs
            raise ValueError("items must differ in their first 6 significant digits")
        return value[0] if len(value) == 1 else value

    @field_validator("seeds")
    @classmethod
    def _seed_range(cls, value: list[int]) -> list[int]:
        if any(seed < 0 or seed > 2**31 - 1 for seed in value):
            raise ValueError("seeds must be between 0 and 2**31-1")
        return value

    @model_validator(mode="before")
    @classmethod
    def _storable(cls, data: Any) -> Any:
        """No NaN / Infinity (JSON's ``1e400`` reads as infinity), no NUL character, nothing nested too deep,
        anywhere in the spec: none can be stored or meant."""
        problem = _unstorable(data)
        if problem:
            raise ValueError(problem)
        return data

    @model_validator(mode="after")
    def _files_by_name(self, info: ValidationInfo) -> ExperimentSpec:
        """Weights and pretrained folders are checkpoint names (see :data:`LOCAL_FILES` for the exception)."""
        if (info.context or {}).get(LOCAL_FILES):
            return self
        problems = file_setting_problems("classifier", self.classifier_settings, "classifier_settings")
        for name, values in self.generator_settings.items():
            problems += file_setting_problems(name, values, f"generator_settings.{name}")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        if any(arm in GENERATIVE_ARMS for arm in self.arms) and not self.generators:
            raise ValueError("the generative and genmix arms need at least one generator")
        unknown = set(self.generator_settings) - set(self.generators)
        if unknown:
            raise ValueError(f"generator_settings for {sorted(unknown)}, which are not in generators")
        if self.filter_tau is not None and not self.trained_generators:
            raise ValueError("filter_tau filters synthetic images: it needs the generative or genmix arm")
        if "name" in self.classifier_settings:
            raise ValueError("name the classifier in 'classifier', not in classifier_settings")
        checked = check_settings("classifier", self.profile, self.classifier_settings)
        problems = [f"classifier_settings: {p}" for p in checked]
        for name, values in self.generator_settings.items():
            problems += [f"generator_settings.{name}: {p}" for p in check_settings(name, self.profile, values)]
        if problems:
            raise ValueError("; ".join(problems))
        if len(self.genmix_grid()) > MAX_GRID:
            raise ValueError(f"the lists of {', '.join(GRID_FIELDS)} make more than {MAX_GRID} combinations")
        if len(self.planned_runs()) > MAX_CLASSIFIER_RUNS:
            raise ValueError(f"more than {MAX_CLASSIFIER_RUNS} classifiers: fewer seeds, arms or list values")
        return self

    @property
    def trained_generators(self) -> list[str]:
        """The generators actually trained: none when no arm uses synthetic images."""
        return list(self.generators) if any(arm in GENERATIVE_ARMS for arm in self.arms) else []

    def classifier_overrides(self) -> dict[str, Any]:
        """The settings laid over the profile's classifier (the network's name included when chosen)."""
        return {**({"name": self.classifier} if self.classifier else {}), **self.classifier_settings}

    @property
    def has_grid(self) -> bool:
        """True when a GenMix setting is a list: GenMix then also runs "tuned on validation"."""
        return any(isinstance(getattr(self, name), list) for name in GRID_FIELDS)

    def fixed_genmix(self) -> dict[str, Any]:
        """The fixed GenMix arm's settings: single values as given; a list's value is the paper's."""
        return {name: fixed_setting(name, getattr(self, name)) for name in GRID_FIELDS}

    def genmix_grid(self) -> list[dict[str, Any]]:
        """Every combination of the list-valued GenMix settings (in list order); just the fixed one without lists."""
        values = [v if isinstance(v, list) else [v] for v in (getattr(self, name) for name in GRID_FIELDS)]
        return [dict(zip(GRID_FIELDS, combo, strict=True)) for combo in itertools.product(*values)]

    @property
    def sampled_ratio(self) -> float:
        """The synthetic ratio each generator samples at: the largest one any run needs (smaller ones are
        per-class prefixes of that set)."""
        ratios = self.synthetic_ratio if isinstance(self.synthetic_ratio, list) else [self.synthetic_ratio]
        return max([*ratios, self.fixed_genmix()["synthetic_ratio"]])

    def planned_runs(self) -> list[PlannedRun]:
        """Every classifier the experiment trains, in order: per seed, per classifier replicate, per arm (and per
        generator, and per GenMix combination: the fixed one first, then the grid's others; with ``filter_tau``
        each synthetic arm's fixed run is followed by its filtered twin)."""
        fixed = self.fixed_genmix()
        grid = self.genmix_grid() if self.has_grid else []
        combos = [(fixed, True, fixed in grid)] + [(g, False, True) for g in grid if g != fixed]
        filtering = self.filter_tau is not None
        runs: list[PlannedRun] = []
        for seed in self.seeds:
            for replicate in range(self.classifier_seeds_per_generator):
                cseed = classifier_seed(seed, replicate)
                for arm in self.arms:
                    if arm not in GENERATIVE_ARMS:
                        runs.append(PlannedRun(arm, None, seed, replicate, cseed, None))
                        continue
                    ratio = {"synthetic_ratio": fixed["synthetic_ratio"]}
                    arm_combos = combos if arm == "genmix" else [(ratio, True, False)]
                    for gen in self.generators:
                        for settings, is_fixed, candidate in arm_combos:
                            runs.append(PlannedRun(arm, gen, seed, replicate, cseed, dict(settings), is_fixed,
                                                   candidate))  # fmt: skip
                            if filtering and is_fixed:
                                runs.append(PlannedRun(arm, gen, seed, replicate, cseed, dict(settings), True, False,
                                                       filtered=True))  # fmt: skip
        return runs


def spec_fields(values: dict[str, Any]) -> dict[str, Any]:
    """The keys of a stored job spec (which also holds service fields) that belong to the experiment."""
    return {key: values[key] for key in ExperimentSpec.model_fields if key in values}
