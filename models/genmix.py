"""The GenMix mixer, the paper's Eq. (1): ``x_T = λ·x_S + (1-λ)·x_R``, ``y_T = λ·y_S + (1-λ)·y_R``.

``x_R`` is a real training image, ``x_S`` a partner drawn from the pool of real ∪ synthetic images (the
paper) or from the synthetic images only, and ``λ ~ Beta(α, β)`` is drawn per sample (paper: Beta(0.3, 1),
so half the mixed images are at least 90 % real). The real–real MixUp baseline (Zhang et al.) lives here
too because it is the same blend with a different pairing and λ law.

Speed: the blend is one ``embedding_bag`` call (a weighted sum of gathered rows per output row); soft labels
are one ``scatter_add_`` of the same weights, so a mixed batch costs a handful of kernel launches whatever its
size. Real and synthetic images stay two tensors (a concatenated pool would copy the whole training set), so
each output row gathers its real image and its partner from both tensors and weighs the one not drawn by zero:
one more row read per output row, no data-dependent shapes, no host round trip (docs/BENCHMARKS.md, Mixer).

Memory: a uint8 pool stays uint8 (1 byte per pixel, on the device too); only the rows each output row
blends are gathered and converted per batch (``value_divisor`` maps them to the caller's scale, 255 for
[0, 1]). The float values the blend sees are the ones a float pool of ``u / value_divisor`` would hold, so
a uint8 pool gives bit-identical batches. Mixed images are produced on first access (or chunk by chunk
with :meth:`MixBatch.image_chunks`), so an export of many images never holds them all as floats.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property

import torch
import torch.nn.functional as F

from models.names import PARTNER_POOLS, PartnerPool
from models.runtime import DTYPE, torch_rng
from models.spec import GENMIX_ALPHA, GENMIX_BETA, MIX_PROB, PARTNER_POOL

REAL = 0
SYNTHETIC = 1


@dataclass(frozen=True)
class GenMixConfig:
    """How partners and λ are drawn.

    ``class_balanced``: the partner's class is drawn uniformly over the classes present in the pool, then a
    partner uniformly within that class, so minority classes are mixed in as often as majority ones.
    ``mix_prob``: the share of samples that are mixed; the rest get λ = 0 (the real image unchanged).
    """

    alpha: float = GENMIX_ALPHA
    beta: float = GENMIX_BETA
    pool: PartnerPool = PARTNER_POOL
    class_balanced: bool = False
    mix_prob: float = MIX_PROB

    def __post_init__(self) -> None:
        if not self.alpha > 0:
            raise ValueError(f"GenMix alpha must be > 0 (paper: {GENMIX_ALPHA}), got {self.alpha}")
        if not self.beta > 0:
            raise ValueError(f"GenMix beta must be > 0 (paper: {GENMIX_BETA}), got {self.beta}")
        if self.pool not in PARTNER_POOLS:
            raise ValueError(f"GenMix pool must be one of {PARTNER_POOLS}, got {self.pool!r}")
        if not 0.0 <= self.mix_prob <= 1.0:
            raise ValueError(f"GenMix mix_prob must be in [0, 1], got {self.mix_prob}")


@dataclass
class MixBatch:
    """One mixed batch and everything needed to reproduce it.

    ``lam`` is the weight of the partner. ``pool_index`` is a global pool index (real rows first, then
    synthetic); ``partner_pool`` (``REAL`` 0 / ``SYNTHETIC`` 1) and ``partner_index`` (into that pool's tensors
    as passed to :class:`GenMixer`) are derived from it on first access, so a training step never pays
    for bookkeeping it does not read. Rows with ``lam == 0`` (see ``mix_prob``) are the real image unchanged;
    their partner was drawn but carries no weight. ``images`` is blended from the mixer's pool on first access;
    :meth:`image_chunks` yields the same values a slice at a time without holding them all.
    """

    soft_labels: torch.Tensor
    lam: torch.Tensor
    real_index: torch.Tensor
    pool_index: torch.Tensor
    n_real: int
    rows: torch.Tensor = field(repr=False)  # (N, 2) pool rows: real, partner
    weights: torch.Tensor = field(repr=False)  # (N, 2): 1 - λ, λ
    blend: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = field(repr=False)

    def __len__(self) -> int:
        return int(self.lam.shape[0])

    @cached_property
    def images(self) -> torch.Tensor:
        return self.blend(self.rows, self.weights)

    def image_chunks(self, size: int) -> Iterator[torch.Tensor]:
        """The mixed images ``size`` rows at a time (equal to slices of :attr:`images`)."""
        if size < 1:
            raise ValueError(f"chunk size must be >= 1, got {size}")
        for start in range(0, len(self), size):
            yield self.blend(self.rows[start : start + size], self.weights[start : start + size])

    @cached_property
    def partner_pool(self) -> torch.Tensor:
        return (self.pool_index >= self.n_real).to(torch.int8)

    @cached_property
    def partner_index(self) -> torch.Tensor:
        return torch.where(self.pool_index >= self.n_real, self.pool_index - self.n_real, self.pool_index)


def _flat_rows(images: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """(N, C, H, W) -> (N, C*H*W) rows in memory order without a copy where the layout allows, and whether
    the rows are channels-last (H, W, C) order (e.g. a permuted view of an (N, H, W, C) array)."""
    if images.is_contiguous():
        return images.view(len(images), -1), False
    if images.is_contiguous(memory_format=torch.channels_last):
        return images.permute(0, 2, 3, 1).reshape(len(images), -1), True
    return images.contiguous().view(len(images), -1), False


def sample_beta(
    count: int, alpha: float, beta: float, generator: torch.Generator, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """``count`` seeded draws from Beta(alpha, beta) as float32.

    ``torch.distributions.Beta`` cannot take a generator, so: for β = 1 the exact inverse CDF ``u**(1/α)``
    of a seeded uniform (two cheap kernels, the paper's case); otherwise ``X / (X + Y)`` with seeded Gamma draws
    ``X ~ Γ(α)``, ``Y ~ Γ(β)`` from ``torch._standard_gamma``.
    """
    if beta == 1.0:
        return torch.rand(count, generator=generator, device=device, dtype=DTYPE).pow_(1.0 / alpha)
    x = torch._standard_gamma(torch.full((count,), alpha, device=device, dtype=DTYPE), generator=generator)
    y = torch._standard_gamma(torch.full((count,), beta, device=device, dtype=DTYPE), generator=generator)
    total = x + y
    # Both Gamma draws can underflow to 0 for tiny shapes; λ is then undefined, so split evenly.
    return torch.where(total > 0, x / total.clamp_min(torch.finfo(DTYPE).tiny), 0.5)


class GenMixer:
    """Mixes real training images with partners from the real ∪ synthetic (or synthetic-only) pool.

    Built once per training run; owns a private generator so its draws are reproducible from ``seed`` and
    never disturb the training loop's RNG. Image tensors are (N, C, H, W), floats at any value scale or uint8;
    they are kept as the caller's two tensors in their own dtype (views where the layout allows), so the mixer
    adds no copy of either set (uint8 stays 1 byte per pixel; a channels-last view such as a permuted (N, H, W,
    C) array is kept in that order, without a layout copy). Mixed images are float32: a uint8 pool's rows are
    converted per batch and divided by ``value_divisor`` (255 for [0, 1]; 1 keeps the 0–255 scale).
    """

    def __init__(
        self,
        real_images: torch.Tensor,
        real_labels: torch.Tensor,
        synthetic_images: torch.Tensor | None,
        synthetic_labels: torch.Tensor | None,
        num_classes: int,
        config: GenMixConfig | None = None,
        seed: int = 0,
        value_divisor: float = 1.0,
    ) -> None:
        self.config = config or GenMixConfig()
        self.num_classes = int(num_classes)
        device = real_images.device
        if real_images.ndim != 4 or len(real_images) == 0:
            raise ValueError(f"real_images must be a non-empty (N, C, H, W) tensor, got {tuple(real_images.shape)}")
        if synthetic_images is None or synthetic_labels is None:
            synthetic_images = real_images.new_empty((0, *real_images.shape[1:]))
            synthetic_labels = real_labels.new_empty((0,))
        if synthetic_images.shape[1:] != real_images.shape[1:] and len(synthetic_images):
            raise ValueError(
                f"synthetic images {tuple(synthetic_images.shape[1:])} must match real images "
                f"{tuple(real_images.shape[1:])} in (C, H, W)"
            )
        if synthetic_images.device != device or real_labels.device != device or synthetic_labels.device != device:
            raise ValueError("real and synthetic images and labels must all be on the same device")
        for name, images, labels in (
            ("real", real_images, real_labels),
            ("synthetic", synthetic_images, synthetic_labels),
        ):
            if labels.ndim != 1 or len(labels) != len(images):
                raise ValueError(f"{name}_labels must be (N,) with N = {len(images)}, got {tuple(labels.shape)}")
            if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
                raise ValueError(f"{name}_labels must lie in 0..{self.num_classes - 1}")
        if self.config.pool == "synthetic" and len(synthetic_images) == 0:
            raise ValueError("pool='synthetic' needs at least one synthetic image")

        self.device = device
        self.image_shape = tuple(real_images.shape[1:])
        self.n_real = len(real_images)
        self.n_synthetic = len(synthetic_images)
        if not value_divisor > 0:
            raise ValueError(f"value_divisor must be > 0, got {value_divisor}")
        self.value_divisor = float(value_divisor)
        pool_dtype = torch.uint8 if real_images.dtype == torch.uint8 else DTYPE
        # Real and synthetic rows stay two tensors, each a view of the caller's images where the layout allows:
        # a concatenated pool would copy the real set (1 byte per pixel of the whole training set at uint8).
        self._real, self._channels_last = _flat_rows(real_images.to(pool_dtype))
        syn = synthetic_images.to(pool_dtype)
        if self._channels_last:
            syn = syn.permute(0, 2, 3, 1)
        self._synthetic = syn.reshape(self.n_synthetic, self._real.shape[1])
        self._uint8 = pool_dtype == torch.uint8
        self._pool_labels = torch.cat([real_labels.long(), synthetic_labels.long()])
        self._weight_base = torch.tensor([1.0, 0.0], device=device, dtype=DTYPE)
        self._weight_step = torch.tensor([-1.0, 1.0], device=device, dtype=DTYPE)
        self._generator = torch_rng(seed, device)
        # Partners are drawn from candidates [lo, hi) of the pool; class-balanced draws go through a
        # class-sorted copy of the candidate indices with per-class start and count.
        self._lo = self.n_real if self.config.pool == "synthetic" else 0
        self._hi = len(self._pool_labels)
        candidates = torch.arange(self._lo, self._hi, device=device)
        candidate_labels = self._pool_labels[candidates]
        self._by_class = candidates[torch.argsort(candidate_labels, stable=True)]
        counts = torch.bincount(candidate_labels, minlength=self.num_classes)
        self._class_starts = torch.cumsum(counts, 0) - counts
        self._class_counts = counts
        self._present_classes = torch.nonzero(counts).flatten()

    @property
    def real_images(self) -> torch.Tensor:
        """The real rows as an (N, C, H, W) view in their stored dtype, no copy."""
        return self._as_images(self._real)

    @property
    def synthetic_images(self) -> torch.Tensor:
        """The synthetic rows as an (N, C, H, W) view in their stored dtype, no copy."""
        return self._as_images(self._synthetic)

    def _as_images(self, flat: torch.Tensor) -> torch.Tensor:
        if self._channels_last:
            c, h, w = self.image_shape
            return flat.view(len(flat), h, w, c).permute(0, 3, 1, 2)
        return flat.view(len(flat), *self.image_shape)

    @property
    def generator(self) -> torch.Generator:
        """The private RNG (exposed so callers can checkpoint and restore its state)."""
        return self._generator

    def _draw_partners(self, out: torch.Tensor, generator: torch.Generator) -> None:
        """Write global pool indices of partners into ``out`` (a column of the (N, 2) row-index tensor)."""
        if not self.config.class_balanced:
            out.random_(self._lo, self._hi, generator=generator)
            return
        count = out.numel()
        pick = torch.randint(0, len(self._present_classes), (count,), generator=generator, device=self.device)
        classes = self._present_classes[pick]
        sizes = self._class_counts[classes]
        offset = (torch.rand(count, generator=generator, device=self.device, dtype=torch.float64) * sizes).long()
        offset = torch.minimum(offset, sizes - 1)
        out.copy_(self._by_class[self._class_starts[classes] + offset])

    def _mix(self, real_index: torch.Tensor, generator: torch.Generator, check_range: bool = True) -> MixBatch:
        if real_index.ndim != 1 or real_index.dtype != torch.long or real_index.device != self.device:
            real_index = real_index.to(device=self.device, dtype=torch.long).flatten()
        count = real_index.numel()
        if count == 0:
            raise ValueError("real_index is empty")
        if check_range:  # reads two numbers back from the device: the one host round trip of a batch
            low, high = (int(v) for v in torch.aminmax(real_index))
            if low < 0 or high >= self.n_real:  # a pool index past n_real would silently pick a synthetic image
                raise ValueError(f"real_index must lie in 0..{self.n_real - 1}, got {low}..{high}")
        cfg = self.config
        lam = sample_beta(count, cfg.alpha, cfg.beta, generator, self.device)
        if cfg.mix_prob < 1.0:
            keep = torch.rand(count, generator=generator, device=self.device) < cfg.mix_prob
            lam = lam.mul_(keep)
        rows = torch.empty((count, 2), dtype=torch.long, device=self.device)  # (real, partner) pool rows
        rows[:, 0] = real_index
        partner = rows[:, 1]
        self._draw_partners(partner, generator)
        weights = torch.addcmul(self._weight_base, lam[:, None], self._weight_step)  # [1 - λ, λ] per row
        row_labels = self._pool_labels.index_select(0, rows.view(-1)).view(count, 2)
        # 0 + (1-λ) + λ in either order is the same float, so this is deterministic even with CUDA atomics
        soft = torch.zeros(count, self.num_classes, device=self.device, dtype=DTYPE).scatter_add_(
            1, row_labels, weights
        )
        return MixBatch(
            soft_labels=soft,
            lam=lam,
            real_index=real_index,
            pool_index=partner,
            n_real=self.n_real,
            rows=rows,
            weights=weights,
            blend=self._blend,
        )

    def mix(self, real_index: torch.Tensor, check_range: bool = True) -> MixBatch:
        """Mix the real images at ``real_index`` (values in 0..n_real-1) with freshly drawn partners.

        ``check_range=False`` skips the range check, the only step of a batch that waits for the device: for
        callers whose indices are their own permutation of ``0..n_real-1`` (the GenMix arm's training loop).
        """
        return self._mix(real_index, self._generator, check_range)

    def _blend(self, rows: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """Float (n, C, H, W) images ``weights[:, 0]·pool[rows[:, 0]] + weights[:, 1]·pool[rows[:, 1]]``.

        Real and synthetic rows are two tensors (no concatenated copy of the real set), so the gathered table
        holds, per output row, its real image, its partner read from the real rows and its partner read from the
        synthetic rows (indices clamped in range), and the blend weighs the partner that was not drawn by zero:
        ``(1-λ)·a + λ·b + 0·c`` is ``(1-λ)·a + λ·b`` bit for bit, with no data-dependent shape (no host round
        trip). A uint8 table is converted after the gather, so the blend reads the same floats a float pool of
        ``u / value_divisor`` would, at 1 byte per stored pixel."""
        count = len(rows)
        if self.n_synthetic:
            partner = rows[:, 1]
            drawn_synthetic = partner >= self.n_real
            real_rows, synthetic_rows = rows.clamp(max=self.n_real - 1), (partner - self.n_real).clamp_(min=0)
            zero = weights.new_zeros(())
            weights = torch.stack(
                [weights[:, 0], torch.where(drawn_synthetic, zero, weights[:, 1]),
                 torch.where(drawn_synthetic, weights[:, 1], zero)], 1)  # fmt: skip
            table = self._real.new_empty((3 * count, self._real.shape[1]))
            torch.index_select(self._real, 0, real_rows.reshape(-1), out=table[: 2 * count])
            torch.index_select(self._synthetic, 0, synthetic_rows, out=table[2 * count :])
            local = torch.arange(3 * count, device=self.device)
            local = torch.cat([local[: 2 * count].view(count, 2), local[2 * count :, None]], 1)
        else:
            table = self._real.index_select(0, rows.reshape(-1))
            local = torch.arange(2 * count, device=self.device).view(count, 2)
        if self._uint8:
            table = table.to(DTYPE)
            if self.value_divisor != 1.0:
                table.div_(self.value_divisor)
        flat = F.embedding_bag(local, table, per_sample_weights=weights, mode="sum")
        return self._as_images(flat)

    def mix_export(self, count: int, seed: int | None = None) -> MixBatch:
        """``count`` mixed images over uniformly drawn real images, e.g. to export a GenMix data set.

        With ``seed`` the draw uses its own RNG (same seed, same export) and leaves the mixer's RNG alone.
        """
        generator = self._generator if seed is None else torch_rng(seed, self.device)
        real_index = torch.randint(0, self.n_real, (count,), generator=generator, device=self.device)
        return self._mix(real_index, generator, check_range=False)  # drawn in range


def mixup_batch(
    images: torch.Tensor, soft_labels: torch.Tensor, alpha: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Real–real MixUp (Zhang et al.): one ``λ ~ Beta(α, α)`` per batch, partners = a random permutation.

    As in :class:`GenMixer`, λ is the partner's weight: returns ``(λ·x[perm] + (1-λ)·x, λ·y[perm] + (1-λ)·y, λ)``
    with λ a 0-d tensor.
    """
    if not alpha > 0:
        raise ValueError(f"MixUp alpha must be > 0, got {alpha}")
    # Draw the anchor's weight 1-λ (Beta(α, α) is symmetric, so λ has the same law) and blend with it, so a
    # seeded batch is bit-identical to the one of the earlier anchor-weight convention.
    keep = sample_beta(1, alpha, alpha, generator, images.device)[0]
    perm = torch.randperm(len(images), generator=generator, device=images.device)
    mixed_images = torch.lerp(images[perm], images, keep.to(images.dtype))
    mixed_labels = torch.lerp(soft_labels[perm], soft_labels, keep.to(soft_labels.dtype))
    return mixed_images, mixed_labels, 1 - keep
