"""The experiment spec, written once: every entrance (the API's ``POST /jobs``, ``genmix run``, the worker, the
web form via ``/openapi.json``) derives from :class:`ExperimentSpec` and its defaults, and it is validated
completely here, so a spec that would fail (or run for ever) in a worker is refused at the door.

Torch-free (pydantic only), so the API process can validate without loading the science stack.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

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
    synthetic_ratio: float = Field(SYNTHETIC_RATIO, gt=0.0, le=10.0, description="synthetic per real image")
    alpha: float = Field(GENMIX_ALPHA, gt=0.0, le=100.0, description="GenMix: λ ~ Beta(alpha, beta)")
    beta: float = Field(GENMIX_BETA, gt=0.0, le=100.0, description="GenMix: the Beta's second parameter")
    mixup_alpha: float = Field(MIXUP_ALPHA, gt=0.0, le=100.0, description="MixUp baseline: λ ~ Beta(α, α)")
    partner_pool: PartnerPool = Field(PARTNER_POOL, description="where GenMix partners x_S come from")
    class_balanced: bool = Field(False, description="draw the GenMix partner's class uniformly")
    mix_prob: float = Field(MIX_PROB, ge=0.0, le=1.0, description="share of training samples GenMix mixes")
    profile: Profile = Field("quick", description="hyperparameter profile: quick (CPU) or paper")
    classifier: ClassifierName | None = Field(None, description="classifier network; default: the profile's")
    classifier_settings: dict[str, Any] = Field(
        {}, description="classifier hyperparameters over the profile, e.g. {'epochs': 10}"
    )
    generator_settings: dict[GeneratorName, dict[str, Any]] = Field(
        {},
        description="per-generator hyperparameters over the profile, e.g. {'dcgan': {'iterations': 500}}",
    )
    seeds: list[int] = Field([0], min_length=1, max_length=MAX_SEEDS, description="classifier seeds")
    device: Device = Field("auto", description="auto takes CUDA when the worker has it")
    figures: bool = Field(True, description="draw sample grids, t-SNE, confusion matrices and curves")

    @field_validator("arms", "generators", "seeds")
    @classmethod
    def _unique(cls, value: list[Any]) -> list[Any]:
        if len(set(value)) != len(value):
            raise ValueError("must not repeat items")
        return value

    @field_validator("seeds")
    @classmethod
    def _seed_range(cls, value: list[int]) -> list[int]:
        if any(seed < 0 or seed > 2**31 - 1 for seed in value):
            raise ValueError("seeds must be between 0 and 2**31-1")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentSpec:
        if any(arm in GENERATIVE_ARMS for arm in self.arms) and not self.generators:
            raise ValueError("the generative and genmix arms need at least one generator")
        unknown = set(self.generator_settings) - set(self.generators)
        if unknown:
            raise ValueError(f"generator_settings for {sorted(unknown)}, which are not in generators")
        if "name" in self.classifier_settings:
            raise ValueError("name the classifier in 'classifier', not in classifier_settings")
        checked = check_settings("classifier", self.profile, self.classifier_settings)
        problems = [f"classifier_settings: {p}" for p in checked]
        for name, values in self.generator_settings.items():
            problems += [f"generator_settings.{name}: {p}" for p in check_settings(name, self.profile, values)]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def trained_generators(self) -> list[str]:
        """The generators actually trained: none when no arm uses synthetic images."""
        return list(self.generators) if any(arm in GENERATIVE_ARMS for arm in self.arms) else []

    def classifier_overrides(self) -> dict[str, Any]:
        """The settings laid over the profile's classifier (the network's name included when chosen)."""
        return {**({"name": self.classifier} if self.classifier else {}), **self.classifier_settings}

    def planned_runs(self) -> list[tuple[str, str | None, int]]:
        """(arm, generator, seed) for every classifier the experiment trains, in order."""
        runs: list[tuple[str, str | None, int]] = []
        for seed in self.seeds:
            for arm in self.arms:
                if arm in GENERATIVE_ARMS:
                    runs.extend((arm, gen, seed) for gen in self.generators)
                else:
                    runs.append((arm, None, seed))
        return runs


def spec_fields(values: dict[str, Any]) -> dict[str, Any]:
    """The keys of a stored job spec (which also holds service fields) that belong to the experiment."""
    return {key: values[key] for key in ExperimentSpec.model_fields if key in values}
