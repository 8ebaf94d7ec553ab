"""Class-conditional StyleGAN2-style generator for small medical sets (Karras et al. 2020, "StyleGAN2").

What is here and why:

* mapping network: normalised ``z`` concatenated with a normalised class embedding, an MLP at 1/100 learning
  rate (StyleGAN2-ADA's conditioning) → ``w``;
* synthesis network: a learnt constant, modulated/demodulated 3x3 convolutions, per-layer noise with learnt
  strength, skip ``toRGB`` outputs; style mixing regularisation (two ``w`` with a crossover layer);
* residual discriminator with minibatch-std and a projection on the class embedding;
* non-saturating logistic loss, lazy R1 on real images (every ``r1_interval`` steps, Adam rescaled as in
  StyleGAN2); ``G_ema`` (EMA with ramp-up) is what :meth:`StyleGAN.sample` uses;
* DiffAugment (Zhao et al. 2020: colour, translation, cutout) applied to real and fake images before the
  discriminator — a few hundred images are otherwise memorised by D in a few thousand steps.

Left out (documented in docs/GENERATORS.md): path-length regularisation, FIR blur filters (bilinear resampling
instead), truncation. Images: gray or RGB, square, side ``b * 2**n`` with 4 <= b <= 8 (28 → 7·4, 32, 64, 128).
"""

from __future__ import annotations

import copy
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

_ARCH_KEYS = ("z_dim", "w_dim", "mapping_layers", "fmap_base", "fmap_max")
_GAIN = math.sqrt(2.0)  # lrelu gain, as StyleGAN's bias_act


def _width(level: int, fmap_base: int, fmap_max: int) -> int:
    """Channels at resolution level ``level`` (0 = coarsest)."""
    return max(1, min(fmap_max, fmap_base // 2**level))


# --------------------------------------------------------------------------------- equalised-lr layers


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate (weights N(0,1) scaled at run time) and optional lrelu."""

    def __init__(self, c_in: int, c_out: int, bias_init: float = 0.0, lr_mul: float = 1.0, act: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in) / lr_mul)
        self.bias = nn.Parameter(torch.full((c_out,), float(bias_init) / lr_mul))
        self.scale = lr_mul / math.sqrt(c_in)
        self.lr_mul = lr_mul
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(x, 0.2) * _GAIN if self.act else x


class EqualConv2d(nn.Module):
    """Conv layer with equalised learning rate and optional lrelu (discriminator building block)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, bias: bool = True, act: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None
        self.scale = 1.0 / math.sqrt(c_in * kernel * kernel)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.weight.shape[-1] // 2)
        return F.leaky_relu(x, 0.2) * _GAIN if self.act else x


def _draw(
    kind: str, shape: tuple[int, ...], gen: torch.Generator | None, like: torch.Tensor, **kw: Any
) -> torch.Tensor:
    """``torch.rand``/``randn``/``randint`` of ``shape`` from ``gen`` on the generator's own device, then on
    ``like``'s device (a no-op when they agree: training draws on the device, so no host round trip; a CPU
    generator, e.g. for device-independent sampling, still works). ``randint`` takes ``low``/``high``."""
    device = gen.device if gen is not None else like.device
    if kind == "randint":
        out = torch.randint(kw.pop("low"), kw.pop("high"), shape, generator=gen, device=device)
    else:
        out = getattr(torch, kind)(shape, generator=gen, device=device, dtype=kw.pop("dtype", torch.float32))
    return out if out.device == like.device else out.to(like.device, non_blocking=True)


def _normalize(x: torch.Tensor) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + 1e-8).rsqrt()


# ------------------------------------------------------------------------------------------ generator


class MappingNetwork(nn.Module):
    """``(z, class) -> w``: normalised z and class embedding, concatenated, through an MLP at lr x 0.01."""

    def __init__(self, z_dim: int, num_classes: int, w_dim: int, layers: int):
        super().__init__()
        self.num_classes = num_classes
        self.embed = EqualLinear(num_classes, w_dim)
        dims = [z_dim + w_dim] + [w_dim] * layers
        self.net = nn.Sequential(
            *[EqualLinear(a, b, lr_mul=0.01, act=True) for a, b in zip(dims[:-1], dims[1:], strict=True)]
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        c = self.embed(F.one_hot(labels, self.num_classes).to(z.dtype))
        return self.net(torch.cat([_normalize(z), _normalize(c)], dim=1))


class ModulatedConv2d(nn.Module):
    """StyleGAN2's weight (de)modulation: per-sample weights ``w * s``, rescaled to unit norm, as a grouped conv."""

    def __init__(self, c_in: int, c_out: int, kernel: int, w_dim: int, demodulate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(c_out, c_in, kernel, kernel))
        self.affine = EqualLinear(w_dim, c_in, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(c_in * kernel * kernel)
        self.demodulate = demodulate

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        # Scale activations instead of building per-sample weights (StyleGAN2's non-fused form): the same
        # result, but one ordinary convolution instead of a grouped one, far faster to train on CPU and GPU.
        styles = self.affine(w)  # (N, in)
        weight = self.weight * self.scale
        x = F.conv2d(x * styles[:, :, None, None].to(x.dtype), weight.to(x.dtype), padding=weight.shape[-1] // 2)
        if self.demodulate:
            # ||w_oik * s_i||² over (i, k) for each sample and output channel: (N, in) @ (in, out)
            dcoefs = (styles.square() @ weight.square().sum(dim=(2, 3)).T + 1e-8).rsqrt()
            x = x * dcoefs[:, :, None, None].to(x.dtype)
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally after 2x upsampling) + scaled per-pixel noise + bias + lrelu."""

    def __init__(self, c_in: int, c_out: int, w_dim: int, up: bool = False):
        super().__init__()
        self.conv = ModulatedConv2d(c_in, c_out, 3, w_dim)
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.up = up

    def forward(self, x: torch.Tensor, w: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)
        x = self.conv(x, w)
        n, _, h, width = x.shape
        noise = _draw("randn", (n, 1, h, width), gen, x).to(x.dtype)
        x = x + noise * self.noise_strength + self.bias[None, :, None, None]
        return F.leaky_relu(x, 0.2) * _GAIN


class ToRGB(nn.Module):
    """Modulated 1x1 conv without demodulation: features -> image residual at this resolution."""

    def __init__(self, c_in: int, channels: int, w_dim: int):
        super().__init__()
        self.conv = ModulatedConv2d(c_in, channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None]


class SynthesisNetwork(nn.Module):
    """Constant ``base x base`` input, then ``doublings`` blocks of (up-conv, conv), skip toRGB outputs.

    Each conv takes its own ``w``; a toRGB shares the ``w`` of the next block's first conv (StyleGAN2's
    layout), so there are ``2 * doublings + 2`` ``w`` per image.
    """

    def __init__(self, size: int, channels: int, w_dim: int, fmap_base: int, fmap_max: int):
        super().__init__()
        base, doublings = spatial_plan(size, "StyleGAN")
        widths = [_width(i, fmap_base, fmap_max) for i in range(doublings + 1)]
        self.const = nn.Parameter(torch.randn(widths[0], base, base))
        self.convs = nn.ModuleList([SynthesisLayer(widths[0], widths[0], w_dim)])
        self.torgbs = nn.ModuleList([ToRGB(widths[0], channels, w_dim)])
        for c_in, c_out in zip(widths[:-1], widths[1:], strict=True):
            self.convs.append(SynthesisLayer(c_in, c_out, w_dim, up=True))
            self.convs.append(SynthesisLayer(c_out, c_out, w_dim))
            self.torgbs.append(ToRGB(c_out, channels, w_dim))
        self.num_ws = len(self.convs) + 1

    def forward(self, ws: torch.Tensor, gen: torch.Generator | None = None) -> torch.Tensor:
        x = self.const[None].expand(len(ws), -1, -1, -1)
        x = self.convs[0](x, ws[:, 0], gen)
        img = self.torgbs[0](x, ws[:, 1])
        for block in range(1, len(self.torgbs)):
            i = 2 * block - 1
            x = self.convs[i](x, ws[:, i], gen)
            x = self.convs[i + 1](x, ws[:, i + 1], gen)
            img = F.interpolate(img, scale_factor=2.0, mode="bilinear", align_corners=False)
            img = img + self.torgbs[block](x, ws[:, i + 2])
        return img


class StyleGenerator(nn.Module):
    """Mapping + synthesis; ``mix_prob`` enables style mixing (a second ``z`` from the crossover layer on)."""

    def __init__(self, num_classes: int, channels: int, size: int, cfg: dict[str, Any]):
        super().__init__()
        self.z_dim = cfg["z_dim"]
        self.mapping = MappingNetwork(cfg["z_dim"], num_classes, cfg["w_dim"], cfg["mapping_layers"])
        self.synthesis = SynthesisNetwork(size, channels, cfg["w_dim"], cfg["fmap_base"], cfg["fmap_max"])

    def forward(
        self, z: torch.Tensor, labels: torch.Tensor, gen: torch.Generator | None = None, mix_prob: float = 0.0
    ) -> torch.Tensor:
        num_ws = self.synthesis.num_ws
        ws = self.mapping(z, labels)[:, None].expand(-1, num_ws, -1)
        # Drawn always, so toggling mixing never shifts the random stream. The crossover stays on the device:
        # w from layer `cutoff` on comes from z2 when this step mixes (a select, not a host-side branch).
        cutoff = _draw("randint", (), gen, z, low=1, high=num_ws)
        mix = _draw("rand", (), gen, z) < mix_prob
        z2 = _draw("randn", tuple(z.shape), gen, z).to(z.dtype)
        if mix_prob > 0:
            ws2 = self.mapping(z2, labels)[:, None].expand(-1, num_ws, -1)
            crossed = (torch.arange(num_ws, device=z.device) >= cutoff) & mix
            ws = torch.where(crossed[None, :, None], ws2, ws)
        return self.synthesis(ws, gen)


# -------------------------------------------------------------------------------------- discriminator


class DiscriminatorBlock(nn.Module):
    """Residual block: conv, conv, 2x average-pool down; the skip path is pool + 1x1 conv; sum scaled by 1/sqrt(2)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv0 = EqualConv2d(c_in, c_in, 3)
        self.conv1 = EqualConv2d(c_in, c_out, 3)
        self.skip = EqualConv2d(c_in, c_out, 1, bias=False, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skip = self.skip(F.avg_pool2d(x, 2))
        x = F.avg_pool2d(self.conv1(self.conv0(x)), 2)
        return (skip + x) * math.sqrt(0.5)


def _minibatch_std(x: torch.Tensor, group: int = 4) -> torch.Tensor:
    """Append the mean over channels of the within-group standard deviation as one extra feature map."""
    n, c, h, w = x.shape
    g = max(d for d in range(1, min(group, n) + 1) if n % d == 0)
    y = x.reshape(g, -1, c, h, w).float()
    y = (y.var(dim=0, unbiased=False) + 1e-8).sqrt().mean(dim=(1, 2, 3))  # (N/g,)
    y = y.to(x.dtype).reshape(-1, 1, 1, 1).repeat(g, 1, h, w)
    return torch.cat([x, y], dim=1)


class StyleDiscriminator(nn.Module):
    """fromRGB, residual blocks down to ``base x base``, minibatch-std, conv, fc, then a class projection."""

    def __init__(self, num_classes: int, channels: int, size: int, cfg: dict[str, Any]):
        super().__init__()
        base, doublings = spatial_plan(size, "StyleGAN")
        widths = [_width(i, cfg["fmap_base"], cfg["fmap_max"]) for i in range(doublings + 1)][::-1]
        self.num_classes = num_classes
        self.from_rgb = EqualConv2d(channels, widths[0], 1)
        self.blocks = nn.Sequential(*[DiscriminatorBlock(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)])
        top = widths[-1]
        self.conv = EqualConv2d(top + 1, top, 3)
        self.fc = EqualLinear(top * base * base, top, act=True)
        self.out = EqualLinear(top, top)
        self.embed = EqualLinear(num_classes, top)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        h = self.blocks(self.from_rgb(x))
        h = self.out(self.fc(self.conv(_minibatch_std(h)).flatten(1)))
        cmap = self.embed(F.one_hot(labels, self.num_classes).to(h.dtype))
        return (h * cmap).sum(dim=1) / math.sqrt(h.shape[1])


# --------------------------------------------------------------------------------------- DiffAugment


def diff_augment(x: torch.Tensor, policy: list[str], gen: torch.Generator) -> torch.Tensor:
    """DiffAugment (Zhao et al. 2020) on [-1, 1] images; every random number comes from ``gen`` (on ``x``'s
    device when training, so no draw crosses from the host)."""
    n, _, h, w = x.shape
    dev = x.device

    def rand(*shape: int) -> torch.Tensor:
        return _draw("rand", shape, gen, x).to(x.dtype)

    # Every op draws its random numbers whether enabled or not, so the policy never shifts the stream.
    brightness, saturation, contrast = rand(n, 1, 1, 1), rand(n, 1, 1, 1), rand(n, 1, 1, 1)
    sx, sy = int(h * 0.125 + 0.5), int(w * 0.125 + 0.5)
    tx = _draw("randint", (n, 1, 1), gen, x, low=-sx, high=sx + 1)
    ty = _draw("randint", (n, 1, 1), gen, x, low=-sy, high=sy + 1)
    ch, cw = int(h * 0.5 + 0.5), int(w * 0.5 + 0.5)
    ox = _draw("randint", (n, 1, 1), gen, x, low=0, high=h + (1 - ch % 2))
    oy = _draw("randint", (n, 1, 1), gen, x, low=0, high=w + (1 - cw % 2))
    if "color" in policy:
        x = x + (brightness - 0.5)
        mean = x.mean(dim=1, keepdim=True)
        x = (x - mean) * (saturation * 2) + mean
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * (contrast + 0.5) + mean
    if "translation" in policy:
        gb, gx, gy = torch.meshgrid(
            torch.arange(n, device=dev),
            torch.arange(h, device=dev),
            torch.arange(w, device=dev),
            indexing="ij",
        )
        gx = torch.clamp(gx + tx + 1, 0, h + 1)
        gy = torch.clamp(gy + ty + 1, 0, w + 1)
        x_pad = F.pad(x, [1, 1, 1, 1])
        x = x_pad.permute(0, 2, 3, 1)[gb, gx, gy].permute(0, 3, 1, 2)
    if "cutout" in policy:
        gb, gx, gy = torch.meshgrid(
            torch.arange(n, device=dev),
            torch.arange(ch, device=dev),
            torch.arange(cw, device=dev),
            indexing="ij",
        )
        gx = torch.clamp(gx + ox - ch // 2, 0, h - 1)
        gy = torch.clamp(gy + oy - cw // 2, 0, w - 1)
        mask = torch.ones(n, h, w, dtype=x.dtype, device=dev)
        mask[gb, gx, gy] = 0
        x = x * mask[:, None]
    return x


# ------------------------------------------------------------------------------------------ generator


class StyleGAN(Generator):
    """One class-conditional StyleGAN2-style GAN for all classes; see the module docstring."""

    name: ClassVar[str] = "stylegan"
    loss_names: ClassVar[tuple[str, ...]] = ("loss_d", "loss_g")
    arch_keys: ClassVar[tuple[str, ...]] = _ARCH_KEYS
    # profiles and total_key: models.profiles.GENERATOR_PROFILES["stylegan"] and STEP_KEYS["stylegan"]

    def _build(self) -> None:
        height, width = self.image_size
        if height != width:
            raise ValueError(f"StyleGAN needs square images, got {height}x{width}")
        unknown = set(self.config["augment"]) - {"color", "translation", "cutout"}
        if unknown:
            raise ValueError(f"unknown DiffAugment ops {sorted(unknown)}; known: color, translation, cutout")
        cfg, k, c = self.config, self.num_classes, self.channels
        with torch.random.fork_rng(devices=[]):  # reproducible init that leaves the caller's RNG alone
            torch.manual_seed(self.seed)
            self.netG = StyleGenerator(k, c, height, cfg)
            self.netD = StyleDiscriminator(k, c, height, cfg)
        self.netG_ema = copy.deepcopy(self.netG).eval().requires_grad_(False)
        for net in (self.netG, self.netD, self.netG_ema):
            place_model(net, self.device)
        self.opt_g = torch.optim.Adam(self.netG.parameters(), lr=cfg["lr"], betas=(cfg["beta1"], cfg["beta2"]))
        c = cfg["r1_interval"] / (cfg["r1_interval"] + 1)  # lazy-regularisation correction (StyleGAN2 App. B)
        self.opt_d = torch.optim.Adam(
            self.netD.parameters(), lr=cfg["lr"] * c, betas=(cfg["beta1"] ** c, cfg["beta2"] ** c)
        )
        self.rng = self._train_rng()  # batches, latents, noise, augmentation, drawn on the device
        self.r1_last = torch.zeros((), device=self.device)  # the latest R1 penalty, for progress reports (synced then)

    @property
    def r1_gamma(self) -> float:
        gamma = self.config["r1_gamma"]
        return float(gamma) if gamma is not None else 0.0002 * self.image_size[0] ** 2 / self.config["batch_size"]

    # ---------------------------------------------------------------------------------------- training

    def _augment(self, x: torch.Tensor) -> torch.Tensor:
        return diff_augment(x, self.config["augment"], self.rng)

    @torch.no_grad()
    def _update_ema(self) -> None:
        cfg = self.config
        batch = cfg["batch_size"]
        ema_nimg = (cfg["ema_kimg"] if cfg["ema_kimg"] is not None else batch * 10 / 32) * 1000
        if cfg["ema_rampup"]:
            ema_nimg = min(ema_nimg, (self.step + 1) * batch * cfg["ema_rampup"])  # this step included
        beta = 0.5 ** (batch / max(ema_nimg, 1e-8))
        # One multi-tensor lerp instead of a kernel per parameter (the same values: foreach falls back to lerp_).
        ema_params, params = list(self.netG_ema.parameters()), [p.detach() for p in self.netG.parameters()]
        if len(ema_params) != len(params):
            raise RuntimeError("G_ema and G have different parameters")
        torch._foreach_lerp_(ema_params, params, 1.0 - beta)
        for b_ema, b in zip(self.netG_ema.buffers(), self.netG.buffers(), strict=True):
            b_ema.copy_(b)

    def _train_step(self, images: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """One D step (with lazy R1) and one G step, then the EMA update; returns (loss_d, loss_g)."""
        real, y = self._real_batch(images, labels, weights)
        cfg = self.config
        mp = cfg["mixed_precision"]
        z = torch.randn(len(y), cfg["z_dim"], generator=self.rng, device=self.device)
        with autocast(self.device, mp):
            fake = self.netG(z, y, self.rng, cfg["style_mixing"])

        # Discriminator: logistic loss, plus lazy R1 on (augmented) reals every r1_interval steps.
        do_r1 = (self.step + 1) % cfg["r1_interval"] == 0 and self.r1_gamma > 0
        real = real.detach().requires_grad_(do_r1)
        with autocast(self.device, mp and not do_r1):
            logits_real = self.netD(self._augment(real), y).float()
        with autocast(self.device, mp):
            logits_fake = self.netD(self._augment(fake.detach()), y).float()
        loss_d = F.softplus(logits_fake).mean() + F.softplus(-logits_real).mean()
        if do_r1:
            (grad,) = torch.autograd.grad(logits_real.sum(), real, create_graph=True)
            r1 = grad.square().sum(dim=(1, 2, 3)).mean()
            loss_d = loss_d + r1 * (self.r1_gamma / 2) * cfg["r1_interval"]
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        # Generator: non-saturating loss through the updated D (frozen here: its weight gradients are not needed).
        self.netD.requires_grad_(False)
        with autocast(self.device, mp):
            loss_g = F.softplus(-self.netD(self._augment(fake), y).float()).mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.netD.requires_grad_(True)
        self.opt_g.step()
        self._update_ema()
        if do_r1:
            self.r1_last = r1.detach()
        return torch.stack([loss_d.detach().float(), loss_g.detach().float()])

    def _checkpoint_state(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors = {
            **ckpt.prefixed("G", self.netG.state_dict()),
            **ckpt.prefixed("D", self.netD.state_dict()),
            **ckpt.prefixed("G_ema", self.netG_ema.state_dict()),
            "rng/train": self.rng.get_state(),
        }
        opt_tensors, opt_meta = ckpt.optimizers_state({"opt_g": self.opt_g, "opt_d": self.opt_d})
        return {**tensors, **opt_tensors}, {**self.describe(), **opt_meta}

    def _restore(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.netG.load_state_dict(ckpt.unprefixed("G", tensors))
        self.netD.load_state_dict(ckpt.unprefixed("D", tensors))
        self.netG_ema.load_state_dict(ckpt.unprefixed("G_ema", tensors))
        ckpt.load_optimizers_state({"opt_g": self.opt_g, "opt_d": self.opt_d}, tensors, meta)
        self._restore_rng(tensors["rng/train"], meta)

    def fit(self, train: Split, hooks: TrainHooks | None = None) -> dict[str, float]:
        """Train for ``config["iterations"]`` steps in total, resuming from ``hooks.checkpoint_dir`` if possible."""
        hooks = hooks or TrainHooks()
        self._check_data(train)
        store = self._open_store(hooks)
        images, labels, weights = self._training_tensors(train)
        self.netG.train()
        self.netD.train()
        return self._train_loop(
            hooks, store, lambda: self._train_step(images, labels, weights), extra=lambda: {"r1": float(self.r1_last)}
        )

    # ---------------------------------------------------------------------------------- sampling / files

    @torch.no_grad()
    def sample(self, per_class: list[int], seed: int = 0, should_stop: StopFn | None = None) -> Split:
        """``per_class[k]`` images of class ``k`` from ``G_ema``, in class order; the same seed, the same images."""
        labels = self.sample_labels(per_class)
        rng = torch_rng(seed, self.device)  # latents and per-layer noise drawn where the network runs
        z_all = torch.randn(len(labels), self.config["z_dim"], generator=rng, device=self.device)

        def render(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            with autocast(self.device, self.config["mixed_precision"]):
                return (self.netG_ema(z, y, rng, mix_prob=0.0).float() + 1.0) / 2.0

        return self._sample_in_batches(labels, z_all, render, should_stop)

    def save(self, directory: Path) -> None:
        """``generator_ema.safetensors`` (what sampling uses) + ``config.json``; G and D stay in checkpoints."""
        directory = Path(directory)
        ckpt.save_weights(self.netG_ema, directory / "generator_ema.safetensors")
        ckpt.write_json(directory / "config.json", {**self.describe(), "step": self.step})

    @classmethod
    def load(cls, directory: Path, device: torch.device | str = "cpu") -> StyleGAN:
        directory = Path(directory)
        meta = cls.read_description(directory / "config.json")
        model = cls.from_description(meta, device)
        ckpt.load_weights(model.netG_ema, directory / "generator_ema.safetensors")
        model.netG.load_state_dict(model.netG_ema.state_dict())
        model.step = int(meta.get("step", 0))
        return model
