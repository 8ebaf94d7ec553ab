"""Class-conditional DCGAN (Radford et al. 2015), the paper's first generator.

Generator: ``[z, embed(y)]`` -> ConvTranspose2d + BatchNorm + ReLU, doubling the resolution each layer, Tanh
out. Discriminator: strided Conv2d + BatchNorm (none on the first layer) + LeakyReLU(0.2), then DCGAN's
final "conv to one logit" plus a projection term ``<embed(y), features>`` (Miyato & Koyama 2018), which
conditions on the class more reliably than concatenating label maps.

Sizes: an image side ``S = b * 2**n`` with ``4 <= b <= 8`` (28 = 7·4, 32 = 4·8, 64, 128, ...) is built
natively: the generator starts at ``b × b`` and doubles ``n`` times, so 28×28 needs no resizing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from models import checkpoint as ckpt
from models.datasets import Split
from models.generators.base import Generator, spatial_plan
from models.hooks import StopFn, TrainHooks
from models.runtime import autocast, place_model, torch_rng

_ARCH_KEYS = ("z_dim", "embed_dim", "ngf", "ndf")
"""Config keys that shape the networks: a checkpoint is only resumable when these match."""

_MAX_MULT = 8
"""Channel multiplier cap (DCGAN's ngf*8 / ndf*8), so 128×128 models stay the size of 64×64 ones."""


def _widths(width: int, doublings: int) -> list[int]:
    """Channels from the coarsest to the finest feature map: width*2^(n-1), ..., width (capped)."""
    return [width * min(2 ** (doublings - 1 - i), _MAX_MULT) for i in range(doublings)]


class CondGenerator(nn.Module):
    """``(z, y)`` -> image in [-1, 1]; the class embedding is concatenated to ``z``."""

    def __init__(self, num_classes: int, channels: int, size: int, z_dim: int, embed_dim: int, ngf: int):
        super().__init__()
        base, doublings = spatial_plan(size, "DCGAN")
        widths = _widths(ngf, doublings)
        self.embed = nn.Embedding(num_classes, embed_dim)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(z_dim + embed_dim, widths[0], base, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(True),
        ]
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(True),
            ]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = torch.cat([z, self.embed(labels)], dim=1)
        return self.net(h[:, :, None, None])


class ProjDiscriminator(nn.Module):
    """``(x, y)`` -> one real/fake logit per image: ``w·φ(x) + <embed(y), φ(x)>``."""

    def __init__(self, num_classes: int, channels: int, size: int, ndf: int):
        super().__init__()
        base, doublings = spatial_plan(size, "DCGAN")
        widths = _widths(ndf, doublings)[::-1]
        layers: list[nn.Module] = [
            nn.Conv2d(channels, widths[0], 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, True),
        ]
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            layers += [
                nn.Conv2d(c_in, c_out, 4, 2, 1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.LeakyReLU(0.2, True),
            ]
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(widths[-1], 1, base, 1, 0)
        self.embed = nn.Embedding(num_classes, widths[-1] * base * base)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        phi = self.features(x)
        projection = (self.embed(labels) * phi.flatten(1)).sum(dim=1)
        return self.head(phi).flatten() + projection


@torch.no_grad()
def _dcgan_init(module: nn.Module, gen: torch.Generator) -> None:
    """DCGAN init: conv weights N(0, 0.02), BatchNorm gamma N(1, 0.02), biases 0; embeddings N(0, 0.02)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 0.02, generator=gen)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02, generator=gen)
        bias = getattr(m, "bias", None)
        if isinstance(bias, torch.Tensor):
            nn.init.zeros_(bias)


def _d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor, smoothing: float) -> torch.Tensor:
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    real_target = torch.full_like(real, 1.0 - smoothing)
    return F.binary_cross_entropy_with_logits(real, real_target) + F.binary_cross_entropy_with_logits(
        fake, torch.zeros_like(fake)
    )


def _g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    if kind == "hinge":
        return -fake.mean()
    return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))  # non-saturating


class DCGAN(Generator):
    """One class-conditional DCGAN for all classes; see the module docstring for the architecture."""

    name: ClassVar[str] = "dcgan"
    loss_names: ClassVar[tuple[str, ...]] = ("loss_d", "loss_g")
    arch_keys: ClassVar[tuple[str, ...]] = _ARCH_KEYS
    # profiles and total_key: models.profiles.GENERATOR_PROFILES["dcgan"] and STEP_KEYS["dcgan"]

    def _build(self) -> None:
        height, width = self.image_size
        if height != width:
            raise ValueError(f"DCGAN needs square images, got {height}x{width}")
        if self.config["loss"] not in ("bce", "hinge"):
            raise ValueError(f"DCGAN loss must be 'bce' or 'hinge', got {self.config['loss']!r}")
        cfg, k, c = self.config, self.num_classes, self.channels
        # Build under a forked, seeded global RNG: reproducible, and the caller's RNG is left alone.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self.netG = CondGenerator(k, c, height, cfg["z_dim"], cfg["embed_dim"], cfg["ngf"])
            self.netD = ProjDiscriminator(k, c, height, cfg["ndf"])
        init_rng = torch_rng(self.seed)
        _dcgan_init(self.netG, init_rng)
        _dcgan_init(self.netD, init_rng)
        place_model(self.netG, self.device)
        place_model(self.netD, self.device)
        betas = (cfg["beta1"], cfg["beta2"])
        self.opt_g = torch.optim.Adam(self.netG.parameters(), lr=cfg["lr"], betas=betas)
        self.opt_d = torch.optim.Adam(self.netD.parameters(), lr=cfg["lr"], betas=betas)
        self.rng = self._train_rng()  # data order, flips and noise while training, drawn on the device

    # ----------------------------------------------------------------------------------------- training

    def _checkpoint_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {
            **ckpt.prefixed("G", self.netG.state_dict()),
            **ckpt.prefixed("D", self.netD.state_dict()),
            "rng/train": self.rng.get_state(),
        }
        opt_tensors, opt_meta = ckpt.optimizers_state({"opt_g": self.opt_g, "opt_d": self.opt_d})
        return {**tensors, **opt_tensors}, {**self.describe(), **opt_meta}

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.netG.load_state_dict(ckpt.unprefixed("G", tensors))
        self.netD.load_state_dict(ckpt.unprefixed("D", tensors))
        ckpt.load_optimizers_state({"opt_g": self.opt_g, "opt_d": self.opt_d}, tensors, meta)
        for opt in (self.opt_g, self.opt_d):  # the current config decides the learning rate
            for group in opt.param_groups:
                group["lr"] = self.config["lr"]
        self._restore_rng(tensors["rng/train"], meta)

    def _train_step(self, images: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        real, y = self._real_batch(images, labels, weights)
        z = torch.randn(len(y), cfg["z_dim"], generator=self.rng, device=self.device)
        with autocast(self.device):
            fake = self.netG(z, y)
            loss_d = _d_loss(cfg["loss"], self.netD(real, y), self.netD(fake.detach(), y), cfg["label_smoothing"])
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()
        with autocast(self.device):
            loss_g = _g_loss(cfg["loss"], self.netD(fake, y))
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        return torch.stack([loss_d.detach().float(), loss_g.detach().float()])

    def fit(self, train: Split, hooks: TrainHooks | None = None) -> dict[str, float]:
        """Train to ``config["iterations"]`` steps in all; resume from ``hooks.checkpoint_dir`` when there."""
        hooks = hooks or TrainHooks()
        self._check_data(train)
        store = self._open_store(hooks)
        images, labels, weights = self._training_tensors(train)
        self.netG.train()
        self.netD.train()
        stats = self._train_loop(hooks, store, lambda: self._train_step(images, labels, weights))
        self._recalibrate_bn(weights, labels)
        self.netG.eval()
        return stats

    @torch.no_grad()
    def _recalibrate_bn(self, weights: torch.Tensor, labels: torch.Tensor) -> None:
        """Replace G's BatchNorm running statistics by their plain average over fresh training-size batches.

        Labels are drawn as in training; a private RNG (on the device, like training's) keeps training's RNG
        (and so resuming) untouched.
        """
        count = int(self.config["bn_recalibration"])
        norms = [m for m in self.netG.modules() if isinstance(m, nn.BatchNorm2d)]
        if count <= 0 or not norms:
            return
        rng = torch_rng(self.seed + 2, self.device)
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
        self.netG.train()
        batch = int(self.config["batch_size"])
        for done in range(math.ceil(count / batch)):
            for m in norms:  # cumulative average: what momentum=None does, without reading the batch count back
                m.momentum = 1.0 / (done + 1)
            index = torch.multinomial(weights, batch, replacement=True, generator=rng)
            y = labels[index]
            z = torch.randn(batch, self.config["z_dim"], generator=rng, device=self.device)
            with autocast(self.device):
                self.netG(z, y)
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum

    # ---------------------------------------------------------------------------------- sampling / files

    @torch.no_grad()
    def sample(self, per_class: list[int], seed: int = 0, should_stop: StopFn | None = None) -> Split:
        """``per_class[k]`` images of class ``k``, in class order; the same seed gives the same images."""
        labels = self.sample_labels(per_class)
        z_all = torch.randn(len(labels), self.config["z_dim"], generator=torch_rng(seed))
        was_training = self.netG.training
        self.netG.eval()
        try:
            return self._sample_in_batches(labels, z_all, lambda z, y: (self.netG(z, y).float() + 1.0) / 2.0,
                                           should_stop)  # fmt: skip
        finally:
            self.netG.train(was_training)

    def save(self, directory: Path) -> None:
        """``generator.safetensors`` + ``config.json``; the discriminator is only kept in checkpoints."""
        directory = Path(directory)
        ckpt.save_weights(self.netG, directory / "generator.safetensors")
        ckpt.write_json(directory / "config.json", {**self.describe(), "step": self.step})

    @classmethod
    def load(cls, directory: Path, device: torch.device | str = "cpu") -> DCGAN:
        directory = Path(directory)
        meta = cls.read_description(directory / "config.json")
        model = cls.from_description(meta, device)
        ckpt.load_weights(model.netG, directory / "generator.safetensors")
        model.step = int(meta.get("step", 0))
        model.netG.eval()
        return model
