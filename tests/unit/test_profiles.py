"""models/profiles.py: torch-free profiles and the override checks the API runs before queueing a job."""

from __future__ import annotations

import subprocess
import sys

import pytest

from models import names
from models.profiles import (
    CLASSIFIER_DEFAULTS,
    CLASSIFIER_PROFILES,
    GENERATOR_PROFILES,
    IMAGENET_CLASSIFIERS,
    KINDS,
    STEP_KEYS,
    check_settings,
    classifier_problems,
    profiles_of,
)


def test_generator_profiles_cover_exactly_the_named_generators() -> None:
    assert tuple(GENERATOR_PROFILES) == names.GENERATORS
    assert tuple(STEP_KEYS) == names.GENERATORS
    assert KINDS == ("classifier", *names.GENERATORS)


def test_every_profile_is_complete_and_passes_its_own_check() -> None:
    for kind in KINDS:
        profiles = profiles_of(kind)
        assert {"paper", "quick"} <= set(profiles)
        keys = {frozenset(p) for p in profiles.values()}
        assert len(keys) == 1, f"{kind} profiles have different keys"
        for profile, settings in profiles.items():
            assert check_settings(kind, profile, settings) == [], (kind, profile)
            if kind != "classifier":
                assert STEP_KEYS[kind] in settings


def test_classifier_profiles_are_complete_over_the_defaults() -> None:
    assert CLASSIFIER_PROFILES["paper"] == CLASSIFIER_DEFAULTS
    assert set(CLASSIFIER_PROFILES["quick"]) == set(CLASSIFIER_DEFAULTS)
    assert CLASSIFIER_PROFILES["quick"]["name"] in names.CLASSIFIERS


def test_a_valid_override_is_accepted() -> None:
    assert check_settings("classifier", "quick", {"epochs": 5, "lr": 1, "weights": None, "monitor": "val_auc"}) == []
    assert check_settings("dcgan", "tiny", {"iterations": 100, "lr": 2e-4, "hflip": True, "checkpoint_every": 10}) == []
    assert (
        check_settings("diffusion", "quick", {"block_out_channels": [16, 32], "attention_levels": [False, True]}) == []
    )
    assert check_settings("stylegan", "quick", {"augment": [], "r1_gamma": 1}) == []
    assert check_settings("textual_inversion", "paper", {"init_words": ["mass", "tissue"], "resolution": 512}) == []


def test_huge_work_is_rejected() -> None:
    (problem,) = check_settings("dcgan", "paper", {"iterations": 10**12})
    assert "iterations" in problem and "10000000" in problem
    assert check_settings("diffusion", "paper", {"block_out_channels": [128, 10**6]})
    assert check_settings("classifier", "paper", {"batch_size": 100_000})


def test_negative_and_out_of_range_values_are_rejected() -> None:
    (problem,) = check_settings("classifier", "paper", {"epochs": -5})
    assert "epochs" in problem and "-5" in problem
    assert check_settings("classifier", "paper", {"lr": 0})  # lr > 0
    assert check_settings("classifier", "paper", {"lr": float("nan")})
    assert check_settings("stylegan", "quick", {"beta2": 1.0})  # Adam betas < 1
    assert check_settings("classifier", "paper", {"monitor": "train_loss"})
    assert check_settings("classifier", "paper", {"name": "resnet50"})
    assert check_settings("dcgan", "paper", {"loss": "wasserstein"})
    assert check_settings("stylegan", "paper", {"augment": ["rotate"]})
    assert check_settings("textual_inversion", "paper", {"sampler": "ddpm"})
    assert check_settings("textual_inversion", "paper", {"templates": ["no placeholder"]})
    assert check_settings("diffusion", "paper", {"block_out_channels": []})


def test_fine_tuning_settings_are_validated() -> None:
    fine_tune = {"optimizer": "adamw", "schedule": "cosine", "warmup_epochs": 2, "backbone_lr_mult": 0.1}
    assert check_settings("classifier", "quick", {**fine_tune, "augment": ["hflip", "rotate"], "input_size": 96}) == []
    assert check_settings("classifier", "pretrained", {"input_size": None, "pretrained": False, "augment": []}) == []
    assert check_settings("classifier", "quick", {"optimizer": "sgd"})
    assert check_settings("classifier", "quick", {"schedule": "step"})
    assert check_settings("classifier", "quick", {"augment": ["cutout"]})
    assert check_settings("classifier", "quick", {"augment": "hflip"})
    assert check_settings("classifier", "quick", {"input_size": 4})
    assert check_settings("classifier", "quick", {"input_size": 64.0})
    assert check_settings("classifier", "quick", {"warmup_epochs": -1})
    assert check_settings("classifier", "quick", {"backbone_lr_mult": -0.1})
    assert check_settings("classifier", "quick", {"ema_half_life": 1}) == []  # an int passes for a float
    assert check_settings("classifier", "quick", {"ema_half_life": -1})
    assert check_settings("classifier", "quick", {"ema_half_life": "1"})
    assert check_settings("classifier", "quick", {"pretrained": 1})


def test_pretrained_needs_a_network_with_imagenet_weights() -> None:
    for profile, settings in CLASSIFIER_PROFILES.items():
        assert classifier_problems(settings) == [], profile
    assert classifier_problems({**CLASSIFIER_PROFILES["paper"], "name": "smallcnn"})
    assert classifier_problems({**CLASSIFIER_PROFILES["paper"], "name": "smallcnn", "weights": "mine.pth"}) == []
    assert classifier_problems({**CLASSIFIER_PROFILES["pretrained"], "pretrained": False, "name": "smallcnn"}) == []
    assert set(IMAGENET_CLASSIFIERS) <= set(names.CLASSIFIERS)


def test_the_pretrained_profile_reuses_the_quick_generators() -> None:
    assert CLASSIFIER_PROFILES["pretrained"]["name"] == "efficientnet_lite0"
    for name in names.GENERATORS:
        assert GENERATOR_PROFILES[name]["pretrained"] == GENERATOR_PROFILES[name]["quick"]


def test_unknown_keys_are_rejected_naming_the_known_ones() -> None:
    (problem,) = check_settings("classifier", "quick", {"epochz": 3})
    assert "epochz" in problem
    for known in CLASSIFIER_DEFAULTS:
        assert known in problem
    (problem,) = check_settings("dcgan", "tiny", {"steps": 3})  # dcgan counts iterations
    assert "iterations" in problem


def test_wrong_types_are_rejected() -> None:
    assert check_settings("classifier", "paper", {"epochs": "10"})
    assert check_settings("classifier", "paper", {"epochs": 10.0})  # ints stay ints
    assert check_settings("classifier", "paper", {"epochs": True})  # bools are not numbers
    assert check_settings("classifier", "paper", {"lr": True})
    assert check_settings("classifier", "paper", {"epochs": None})  # not nullable
    assert check_settings("dcgan", "paper", {"hflip": 1})  # bools must be bools
    assert check_settings("diffusion", "paper", {"block_out_channels": 64})
    assert check_settings("diffusion", "paper", {"block_out_channels": [64.0, 128]})
    assert check_settings("diffusion", "paper", {"attention_levels": [0, 1, 1]})
    assert check_settings("textual_inversion", "paper", {"init_words": "lesion"})
    assert check_settings("classifier", "paper", {"weights": 3})
    assert check_settings("classifier", "paper", {"lr": 1}) == []  # ints pass for floats


def test_unknown_kind_and_profile_are_reported() -> None:
    assert "unknown kind" in check_settings("vae", "quick", {})[0]
    assert "unknown profile" in check_settings("dcgan", "huge", {})[0]
    with pytest.raises(ValueError, match="unknown kind"):
        profiles_of("vae")


def test_profiles_module_is_torch_free() -> None:
    code = "import sys, models.profiles; assert 'torch' not in sys.modules and 'numpy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_science_reads_these_profiles() -> None:
    from dataclasses import asdict

    from models.generators import generator_class
    from models.train import ClassifierConfig, classifier_config

    assert asdict(ClassifierConfig()) == CLASSIFIER_DEFAULTS
    assert asdict(classifier_config("quick")) == CLASSIFIER_PROFILES["quick"]
    for name in names.GENERATORS:
        cls = generator_class(name)
        assert cls.profiles is GENERATOR_PROFILES[name]
        assert cls.total_key == STEP_KEYS[name]
