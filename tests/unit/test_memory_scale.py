"""Memory of ``genmix run`` at larger images (issue 14).

Batches that only read images (sampling, evaluation, features, the GenMix export) are capped by a pixel budget:
the configured batch at the sizes the profiles were tuned on (up to 256 × 64² gray), fewer images as they grow,
so a batch's working set is constant in the image size. The measured cases run in a fresh child
(``support.memory.run_measured``): predict()'s peak at 128² and at 256² is the same, where a batch of the
configured size grows with the pixels; and the heap's freed holes go back to the OS when a classifier's training
starts and ends (:func:`models.train.release_freed_memory`).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support.memory import CAN_RESET_PEAK, run_measured
from torch import nn

from models import train as train_module
from models.arms import build_arm
from models.classifiers import build_classifier
from models.datasets import Split
from models.export import build_mixer, save_export
from models.generators.dcgan import DCGAN
from models.genmix import GenMixConfig
from models.profiles import BATCH_PIXEL_BUDGET, GENERATOR_PROFILES, pixel_bounded_batch
from models.train import (
    EVAL_BATCH_ATTR,
    classifier_config,
    eval_batch_size,
    extract_features,
    predict,
    release_freed_memory,
    train_classifier,
)

CPU = torch.device("cpu")


def test_the_budget_keeps_the_tuned_sizes_and_caps_larger_images() -> None:
    assert BATCH_PIXEL_BUDGET == 256 * 64 * 64
    assert pixel_bounded_batch(256, (64, 64, 1)) == 256  # the quick profiles' sampling / eval batch, unchanged
    assert pixel_bounded_batch(256, (28, 28, 1)) == 256
    assert pixel_bounded_batch(256, (64, 64, 3)) == 85
    assert pixel_bounded_batch(256, (128, 128, 3)) == 21  # the scale benchmark's 128 px RGB case
    assert pixel_bounded_batch(256, (3, 128, 128)) == 21  # only C·H·W counts, in any order
    assert pixel_bounded_batch(16, (128, 128, 3)) == 16  # a smaller configured batch stays
    assert pixel_bounded_batch(256, (2048, 2048, 3)) == 1  # never below one image
    assert pixel_bounded_batch(8, ()) == 8  # no shape known: the configured batch
    for side, channels in ((28, 1), (64, 1), (64, 3), (128, 3), (256, 3)):
        n = pixel_bounded_batch(256, (side, side, channels))
        assert n * side * side * channels <= max(BATCH_PIXEL_BUDGET, side * side * channels)
    with pytest.raises(ValueError, match="batch size"):
        pixel_bounded_batch(0, (8, 8, 1))


def test_generator_sampling_batches_follow_the_budget() -> None:
    quick = GENERATOR_PROFILES["dcgan"]["quick"]["sample_batch_size"]
    assert DCGAN(2, 1, (64, 64), profile="quick").sample_batch() == quick == 256
    rgb = DCGAN(2, 3, (128, 128), profile="tiny", seed=0)
    assert rgb.config["sample_batch_size"] == 32 and rgb.sample_batch() == 21
    sizes: list[int] = []
    rgb.netG.register_forward_hook(lambda _m, args, _out: sizes.append(len(args[0])))
    split = rgb.sample([30, 20], seed=1)
    assert split.images.shape == (50, 128, 128, 3) and sizes == [21, 21, 8]


class _Counting(nn.Module):
    """A classifier stand-in that records its batch sizes."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(1, 2)
        self.sizes: list[int] = []

    def features(self, x: torch.Tensor) -> torch.Tensor:
        self.sizes.append(len(x))
        return x.mean(dim=(1, 2, 3))[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def test_predict_and_features_cap_the_eval_batch_by_the_budget() -> None:
    rng = np.random.default_rng(0)
    small = Split(rng.integers(0, 256, (300, 16, 16, 1), dtype=np.uint8), np.arange(300) % 2)
    large = Split(rng.integers(0, 256, (40, 256, 256, 1), dtype=np.uint8), np.arange(40) % 2)
    model = _Counting()
    setattr(model, EVAL_BATCH_ATTR, 256)
    predict(model, small, CPU)
    assert model.sizes == [256, 44]  # below the budget: the configured batch
    model.sizes.clear()
    assert predict(model, large, CPU).shape == (40, 2)
    assert model.sizes == [16, 16, 8]  # 2**20 // 256² = 16
    model.sizes.clear()
    extract_features(model, large.images, CPU, batch_size=100)  # an explicit batch is capped too
    assert model.sizes == [16, 16, 8]
    assert eval_batch_size(model, 7, (256, 256, 1)) == 7


def test_export_chunks_follow_the_budget(tmp_path) -> None:
    rng = np.random.default_rng(1)
    real = Split(rng.integers(0, 256, (30, 256, 256, 1), dtype=np.uint8), np.arange(30) % 2)
    syn = Split(rng.integers(0, 256, (10, 256, 256, 1), dtype=np.uint8), np.arange(10) % 2)
    batch = build_mixer(real, syn, 2, GenMixConfig(), seed=0).mix_export(40)
    rows: list[int] = []
    blend = batch.blend
    batch.blend = lambda r, w: (rows.append(len(r)), blend(r, w))[1]
    path = save_export(batch, tmp_path / "e.npz", ["a", "b"])  # EXPORT_CHUNK 256 configured
    assert rows == [1, 16, 16, 8]  # a one-image probe of the shape, then chunks of 2**20 // 256² images
    with np.load(path) as data:
        np.testing.assert_array_equal(data["images"], blend(batch.rows, batch.weights).numpy())


@pytest.mark.skipif(not CAN_RESET_PEAK, reason="needs Linux /proc peak-RSS reset")
def test_predict_peak_does_not_grow_with_the_image_size_beyond_the_budget() -> None:
    """64 gray images through a 4-channel conv: one batch of all of them takes 4 × the activations at 256² than
    at 128² (17 → 67 MB); capped at 2**20 pixel values per batch, predict()'s peak is the same at both sizes."""
    figures = run_measured(
        """
        import torch
        from torch import nn
        from models.datasets import Split
        from models.tensors import to_tensor
        from models.train import EVAL_BATCH_ATTR, predict

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(1, 4, 3, padding=1)
            def forward(self, x):
                return self.conv(x).mean(dim=(2, 3))[:, :2]

        torch.manual_seed(0)
        net = Net().eval()
        setattr(net, EVAL_BATCH_ATTR, 256)
        rng = np.random.default_rng(0)
        out = {}
        for side in (128, 256):
            split = Split(rng.integers(0, 256, (64, side, side, 1), dtype=np.uint8), np.arange(64) % 2)
            predict(net, split, torch.device("cpu"))  # warm up the kernels
            out[f"bounded_{side}"] = growth_mb(lambda: predict(net, split, torch.device("cpu")))
            with torch.no_grad():
                out[f"whole_{side}"] = growth_mb(lambda: net(to_tensor(split.images)))
        print(json.dumps(out))
        """
    )
    assert figures["whole_256"] > 3 * figures["whole_128"] > 30, figures  # the measurement sees the batch
    assert figures["bounded_256"] < 1.3 * figures["bounded_128"] + 3, figures
    assert figures["bounded_256"] < figures["whole_256"] / 2.5, figures


@pytest.mark.skipif(not CAN_RESET_PEAK, reason="needs Linux /proc")
def test_release_freed_memory_hands_the_heaps_holes_back() -> None:
    """400 freed 512 KiB blocks (on the heap: below the child's 1 MiB mmap threshold) between kept 64 KiB ones
    are holes that free() cannot return; :func:`release_freed_memory` does."""
    figures = run_measured(
        """
        from models.train import release_freed_memory
        rss = lambda: rss_kb("VmRSS:") / 1024
        big, keep = [], []
        for _ in range(400):
            big.append(np.ones(1 << 16))  # 512 KiB
            keep.append(np.ones(1 << 13))  # 64 KiB after each, so a freed big block is a hole, not the heap's top
        before = rss()
        del big
        held = rss()
        release_freed_memory()
        print(json.dumps({"before": before, "held": held, "after": rss()}))
        """
    )
    assert figures["before"] - figures["held"] < 60, figures  # free() keeps the holes resident
    assert figures["held"] - figures["after"] > 150, figures  # of 200 MB freed


def test_training_releases_freed_memory_before_and_after(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []
    monkeypatch.setattr(train_module, "release_freed_memory", lambda: calls.append(1))
    rng = np.random.default_rng(0)
    split = Split(rng.integers(0, 256, (20, 12, 12, 1), dtype=np.uint8), np.arange(20) % 2)
    model = build_classifier("smallcnn", 1, 2, (12, 12))
    config = classifier_config("quick", {"epochs": 1, "batch_size": 8})
    train_classifier(model, build_arm("baseline", split, 2, CPU, seed=0), split, ["a", "b"], config, CPU)
    assert len(calls) == 2
    release_freed_memory()  # the real one runs anywhere
