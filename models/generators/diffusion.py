"""Class-conditional pixel diffusion model (the paper's ADM), built on diffusers.

Why this shape: diffusers' own example script is unconditional, so the class-conditional loop is ours
(the usual way, diffusers issues #128 and #6817): ``UNet2DModel(num_class_embeds=K + 1)`` with
``class_labels=`` in an ε-prediction loop over ``DDPMScheduler`` noise, EMA weights
(``diffusers.training_utils.EMAModel``) for sampling, and classifier-free guidance: labels are replaced by the
null class ``K`` with probability ``cfg_dropout`` while training, and sampling mixes conditional and null
predictions with ``guidance_scale``. Sampling uses DPM-Solver++ (default; good in ~20 steps), DDIM or DDPM.

Fine-tuning: ``pretrained_dir`` names a local diffusers ``UNet2DModel`` folder (or a pipeline folder with a
``unet/`` subfolder). The model then works at the pretrained UNet's resolution and channels: gray data is
repeated to RGB, images are resized in and out, and a class embedding of the wrong size is replaced by a
zero-initialised one (so training starts from the pretrained behaviour). From scratch, the UNet works at
the data's size when ``2**(levels-1)`` divides it (28 = 7·4 with 3 levels), else at the next multiple.

Files: ``save`` writes ``unet/`` (EMA weights) and ``scheduler/`` with ``save_pretrained``, so plain
diffusers loads them (``UNet2DModel.from_pretrained(dir / "unet")``), plus ``genmix.json`` written last.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler, DPMSolverMultistepScheduler, UNet2DModel
from diffusers.training_utils import EMAModel

from models import checkpoint as ckpt
from models.datasets import Split
from models.generators.base import Generator
from models.hooks import StopFn, TrainHooks, stop_if_asked
from models.profiles import DIFFUSION_SAMPLERS
from models.runtime import autocast, place_model, torch_rng

SAMPLERS = DIFFUSION_SAMPLERS
DEFAULT_SAMPLE_STEPS = {"dpm++": 20, "ddim": 50, "ddpm": 1000}
META_FILE = "genmix.json"

_ARCH_KEYS = (
    "block_out_channels",
    "layers_per_block",
    "attention_levels",
    "norm_num_groups",
    "pretrained_dir",
)


def _levels_ok(size: int, levels: int) -> bool:
    return size % (2 ** (levels - 1)) == 0


def _model_size(image_size: tuple[int, int], levels: int) -> int:
    """The UNet's square side: the data's side when the UNet can halve it ``levels - 1`` times, else rounded up."""
    side = max(image_size)
    step = 2 ** (levels - 1)
    return side if image_size[0] == image_size[1] and _levels_ok(side, levels) else math.ceil(side / step) * step


def _unet_from_config(cfg: dict[str, Any], channels: int, size: int, class_embeds: int | None) -> UNet2DModel:
    widths = list(cfg["block_out_channels"])
    attention = list(cfg["attention_levels"])
    if len(attention) != len(widths):
        raise ValueError(f"attention_levels {attention} must have one entry per block_out_channels {widths}")
    return UNet2DModel(
        sample_size=size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=tuple(widths),
        layers_per_block=cfg["layers_per_block"],
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attention),
        up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)),
        attention_head_dim=cfg["attention_head_dim"],
        norm_num_groups=cfg["norm_num_groups"],
        dropout=cfg["dropout"],
        num_class_embeds=class_embeds,
    )


def load_pretrained_unet(path: str | Path, class_embeds: int | None) -> UNet2DModel:
    """A local diffusers UNet2DModel (its folder, or a pipeline folder with ``unet/``), with ``class_embeds`` classes.

    A class embedding of another size (e.g. ImageNet's 1000) is replaced by a zero-initialised one so the
    fine-tune starts exactly from the pretrained model's unconditional behaviour.
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"pretrained UNet directory {path} does not exist (it is never downloaded)")
    folder = path / "unet" if (path / "unet" / "config.json").is_file() else path
    unet = UNet2DModel.from_pretrained(folder, local_files_only=True)
    if unet.config.in_channels != unet.config.out_channels:
        raise ValueError(
            f"{folder}: in_channels {unet.config.in_channels} != out_channels {unet.config.out_channels}; "
            "only ε-prediction UNets (no learned variance) can be fine-tuned here"
        )
    if unet.config.class_embed_type is not None:
        raise ValueError(f"{folder}: class_embed_type {unet.config.class_embed_type!r} is not supported")
    if unet.config.num_class_embeds != class_embeds:
        if class_embeds is None:
            unet.class_embedding = None
        else:
            dim = unet.time_embedding.linear_2.out_features
            unet.class_embedding = torch.nn.Embedding(class_embeds, dim)
            torch.nn.init.zeros_(unet.class_embedding.weight)
        unet.register_to_config(num_class_embeds=class_embeds)
    return unet


class Diffusion(Generator):
    """One class-conditional pixel diffusion model for all classes; see the module docstring."""

    name: ClassVar[str] = "diffusion"
    arch_keys: ClassVar[tuple[str, ...]] = _ARCH_KEYS
    # profiles and total_key: models.profiles.GENERATOR_PROFILES["diffusion"] and STEP_KEYS["diffusion"]

    def _build(self) -> None:
        cfg = self.config
        if cfg["sampler"] not in SAMPLERS:
            raise ValueError(f"diffusion sampler must be one of {SAMPLERS}, got {cfg['sampler']!r}")
        self.null_class = self.num_classes if cfg["cfg_dropout"] > 0 else None
        class_embeds = self.num_classes + 1 if self.null_class is not None else self.num_classes
        with torch.random.fork_rng(devices=[]):  # reproducible init that leaves the caller's RNG alone
            torch.manual_seed(self.seed)
            if cfg["pretrained_dir"]:
                self.unet = load_pretrained_unet(cfg["pretrained_dir"], class_embeds)
            else:
                size = _model_size(self.image_size, len(cfg["block_out_channels"]))
                self.unet = _unet_from_config(cfg, self.channels, size, class_embeds)
        sample_size = self.unet.config.sample_size
        self.model_size = (sample_size, sample_size) if isinstance(sample_size, int) else tuple(sample_size)
        self.model_channels = int(self.unet.config.in_channels)
        if self.model_channels not in (self.channels, 3) or (self.channels == 3 and self.model_channels != 3):
            raise ValueError(f"a {self.model_channels}-channel UNet cannot model {self.channels}-channel images")
        place_model(self.unet, self.device)
        self.noise_scheduler = DDPMScheduler(
            num_train_timesteps=cfg["num_train_timesteps"], beta_schedule=cfg["beta_schedule"]
        )
        self.optimizer = torch.optim.AdamW(self.unet.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
        self.ema = self._new_ema()
        self.ema_unet: UNet2DModel | None = None  # built on demand for sampling
        self.rng = self._train_rng()  # batches, noise, timesteps, label dropout, drawn on the device

    def _new_ema(self) -> EMAModel:
        cfg = self.config
        return EMAModel(
            self.unet.parameters(),
            decay=cfg["ema_decay"],
            use_ema_warmup=True,
            power=cfg["ema_power"],
            foreach=True,
            model_cls=UNet2DModel,
            model_config=self.unet.config,
        )

    # ------------------------------------------------------------------------------------- conversions

    def _to_model(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N, H, W, C) on device -> model input (N, C', H', W') in [-1, 1]."""
        x = images.permute(0, 3, 1, 2).float().div_(255.0)
        if self.model_channels != self.channels:
            x = x.expand(-1, self.model_channels, -1, -1)
        if tuple(x.shape[-2:]) != self.model_size:
            x = F.interpolate(x, size=self.model_size, mode="bilinear", antialias=True, align_corners=False)
        return x.mul(2.0).sub(1.0)

    def _from_model(self, x: torch.Tensor) -> torch.Tensor:
        """Model output in [-1, 1] -> (N, C, H, W) in [0, 1] at the data's channels and size."""
        x = (x.float().clamp(-1, 1) + 1.0) / 2.0
        if tuple(x.shape[-2:]) != tuple(self.image_size):
            x = F.interpolate(x, size=tuple(self.image_size), mode="bilinear", antialias=True, align_corners=False)
        if self.model_channels != self.channels:
            x = x.mean(dim=1, keepdim=True)
        return x.clamp(0, 1)

    # ---------------------------------------------------------------------------------------- training

    def train_step(self, x0: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """One ε-prediction step (with label dropout, clipping and EMA) on a model-space batch; returns the loss."""
        batch = len(x0)
        # Everything drawn on the device from the training RNG: no host-drawn noise copied in per step.
        device = x0.device
        noise = torch.randn(x0.shape, generator=self.rng, device=device, dtype=x0.dtype)
        timesteps = torch.randint(0, self.config["num_train_timesteps"], (batch,), generator=self.rng, device=device)
        drop = torch.rand(batch, generator=self.rng, device=device) < self.config["cfg_dropout"]  # always: same stream
        if self.null_class is not None:
            labels = torch.where(drop, torch.full_like(labels, self.null_class), labels)
        noisy = self.noise_scheduler.add_noise(x0, noise, timesteps)
        with autocast(self.device, self.config["mixed_precision"]):
            pred = self.unet(noisy, timesteps, class_labels=labels).sample
        loss = F.mse_loss(pred.float(), noise)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.config["grad_clip"]:
            torch.nn.utils.clip_grad_norm_(self.unet.parameters(), self.config["grad_clip"])
        self.optimizer.step()
        self.ema.step(self.unet.parameters())
        return loss.detach()

    def _checkpoint_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        ema_state = self.ema.state_dict()
        shadow = ema_state.pop("shadow_params")
        tensors = {
            **ckpt.prefixed("unet", self.unet.state_dict()),
            **{f"ema/{i}": p for i, p in enumerate(shadow)},
            "rng/train": self.rng.get_state(),
        }
        opt_tensors, opt_meta = ckpt.optimizer_state(self.optimizer, "opt")
        tensors.update(opt_tensors)
        return tensors, {**self.describe(), "opt": opt_meta, "ema": ema_state}

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.unet.load_state_dict(ckpt.unprefixed("unet", tensors))
        ckpt.load_optimizer_state(self.optimizer, "opt", tensors, meta["opt"])
        for group in self.optimizer.param_groups:  # the current config decides the learning rate
            group["lr"] = self.config["lr"]
        shadow = [tensors[f"ema/{i}"] for i in range(len(self.ema.shadow_params))]
        self.ema.load_state_dict({**meta["ema"], "shadow_params": shadow})
        self.ema.decay = self.config["ema_decay"]
        self._restore_rng(tensors["rng/train"], meta)
        self.ema_unet = None

    def fit(self, train: Split, hooks: TrainHooks | None = None) -> dict[str, float]:
        """Train for ``config["steps"]`` steps in total, resuming from ``hooks.checkpoint_dir`` if possible."""
        hooks = hooks or TrainHooks()
        self._check_data(train)
        store = self._open_store(hooks)
        images, labels, weights = self._training_tensors(train)
        self.unet.train()
        self.ema_unet = None
        stats = self._train_loop(hooks, store, lambda: self.train_step(*self._real_batch(images, labels, weights)))
        self.unet.eval()
        return stats

    # ---------------------------------------------------------------------------------------- sampling

    def _sampling_unet(self) -> UNet2DModel:
        if self.ema_unet is None:
            self.ema_unet = place_model(UNet2DModel.from_config(self.unet.config), self.device)
            self.ema.copy_to(self.ema_unet.parameters())
            self.ema_unet.eval().requires_grad_(False)
        return self.ema_unet

    def make_scheduler(self, sampler: str | None = None) -> DDPMScheduler | DDIMScheduler | DPMSolverMultistepScheduler:
        """A fresh sampling scheduler sharing the training noise schedule."""
        sampler = sampler or self.config["sampler"]
        config = self.noise_scheduler.config
        if sampler == "dpm++":
            # Pixel-space model: clip x0 predictions to [-1, 1], as DDPM/DDIM's clip_sample does. Without it the
            # data prediction at high noise (alpha_t ~ 1e-4) amplifies small ε errors into saturated images.
            return DPMSolverMultistepScheduler.from_config(
                config, algorithm_type="dpmsolver++", solver_order=2, thresholding=True, sample_max_value=1.0
            )
        if sampler == "ddim":
            return DDIMScheduler.from_config(config)
        if sampler == "ddpm":
            return DDPMScheduler.from_config(config)
        raise ValueError(f"diffusion sampler must be one of {SAMPLERS}, got {sampler!r}")

    @torch.no_grad()
    def denoise(
        self,
        noise: torch.Tensor,
        labels: torch.Tensor,
        sampler: str | None = None,
        steps: int | None = None,
        generator: torch.Generator | None = None,
        should_stop: StopFn | None = None,
    ) -> torch.Tensor:
        """Run the reverse process from ``noise`` (model space) for class ``labels``; returns model-space images.
        ``should_stop`` is asked before every denoising step (:class:`models.hooks.Cancelled`)."""
        sampler = sampler or self.config["sampler"]
        steps = int(steps or self.config["sample_steps"] or DEFAULT_SAMPLE_STEPS[sampler])
        unet = self._sampling_unet()
        scheduler = self.make_scheduler(sampler)
        scheduler.set_timesteps(steps, device=self.device)
        scale = float(self.config["guidance_scale"])
        guided = self.null_class is not None and scale != 1.0
        x = noise.to(self.device) * scheduler.init_noise_sigma
        labels = labels.to(self.device)
        cond = torch.cat([labels, torch.full_like(labels, self.null_class)]) if guided else labels
        for t in scheduler.timesteps:
            stop_if_asked(should_stop)
            model_in = scheduler.scale_model_input(x, t)
            if guided:
                model_in = torch.cat([model_in, model_in])
            with autocast(self.device, self.config["mixed_precision"]):
                eps = unet(model_in, t, class_labels=cond).sample.float()
            if guided:
                eps_cond, eps_null = eps.chunk(2)
                eps = eps_null + scale * (eps_cond - eps_null)
            x = scheduler.step(eps, t, x, generator=generator).prev_sample
        return x

    def sample(self, per_class: list[int], seed: int = 0, should_stop: StopFn | None = None) -> Split:
        """``per_class[k]`` images of class ``k``, in class order; the same seed gives the same images."""
        labels = self.sample_labels(per_class)
        rng = torch_rng(seed)
        noise_all = torch.randn(len(labels), self.model_channels, *self.model_size, generator=rng)
        return self._sample_in_batches(
            labels,
            noise_all,
            lambda noise, y: self._from_model(self.denoise(noise, y, generator=rng, should_stop=should_stop)),
            should_stop,
        )

    # ------------------------------------------------------------------------------------------- files

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "null_class": self.null_class,
        }

    def save(self, directory: Path) -> None:
        """``unet/`` (EMA weights) and ``scheduler/`` via ``save_pretrained``; ``genmix.json`` last (commit mark)."""
        directory = Path(directory)
        self._sampling_unet().save_pretrained(directory / "unet", safe_serialization=True)
        self.noise_scheduler.save_pretrained(directory / "scheduler")
        ckpt.write_json(directory / META_FILE, {**self.describe(), "step": self.step})

    @classmethod
    def load(cls, directory: Path, device: torch.device | str = "cpu") -> Diffusion:
        """Rebuild for sampling (or further fine-tuning) from a folder written by :meth:`save`."""
        directory = Path(directory)
        meta = cls.read_description(directory / META_FILE)
        config = {**meta["config"], "pretrained_dir": str(directory / "unet")}
        model = cls.from_description(meta, device, config=config)
        model.config["pretrained_dir"] = meta["config"]["pretrained_dir"]
        model.step = int(meta.get("step", 0))
        model.unet.eval()
        return model
