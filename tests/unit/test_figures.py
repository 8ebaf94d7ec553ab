"""Each figure writes one PNG that Pillow opens, of a sensible size, for gray and RGB data and tiny inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from models import figures
from models.data import Split


def _split(n_per_class: int, num_classes: int, size: int, channels: int, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n_per_class * num_classes, size, size, channels), dtype=np.uint8)
    return Split(images, np.repeat(np.arange(num_classes), n_per_class))


def _open(path: Path) -> tuple[int, int]:
    assert path.is_file() and path.stat().st_size > 1000
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        return image.size


@pytest.mark.parametrize(("channels", "size", "num_classes"), [(1, 28, 2), (3, 28, 5), (1, 64, 3)])
def test_sample_grid_rows_real_synthetic_genmix(tmp_path: Path, channels: int, size: int, num_classes: int) -> None:
    real = _split(10, num_classes, size, channels)
    synthetic = _split(8, num_classes, size, channels, seed=1)
    rng = np.random.default_rng(2)
    n = 20
    soft = rng.dirichlet(np.ones(num_classes), n)
    genmix = (_split(n, 1, size, channels).images, soft, rng.beta(0.3, 1.0, n))
    names = [f"class {k}" for k in range(num_classes)]
    path = figures.sample_grid(real, synthetic, genmix, names, tmp_path / "grid.png", per_class=6)
    width, height = _open(path)
    assert 400 <= width <= 2500 and 150 <= height <= 1200
    assert width > height  # classes side by side, three rows


def test_sample_grid_real_only_and_a_class_with_too_few_images(tmp_path: Path) -> None:
    real = Split(_split(3, 2, 28, 1).images[:4], np.array([0, 0, 0, 1]))
    path = figures.sample_grid(real, None, None, ["malignant", "benign"], tmp_path / "sub" / "real.png")
    width, height = _open(path)
    assert width > height


@pytest.mark.parametrize("n", [0, 1, 3, 5, 60])
def test_tsne_plot_handles_any_number_of_points(tmp_path: Path, n: int) -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(n, 16))
    labels = rng.integers(0, 3, n)
    kinds = np.array(["real", "synthetic", "genmix"])[np.arange(n) % 3]
    path = figures.tsne_plot(features, labels, kinds, ["cyst", "hemangioma", "metastasis"], tmp_path / "t.png", 0)
    width, height = _open(path)
    assert 500 <= width <= 1000 and 400 <= height <= 900


def test_tsne_plot_rejects_unknown_kinds_and_mismatched_lengths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown kinds"):
        figures.tsne_plot(np.zeros((4, 2)), [0, 1, 0, 1], ["real"] * 3 + ["fake"], ["a", "b"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="differ in length"):
        figures.tsne_plot(np.zeros((4, 2)), [0, 1, 0], ["real"] * 4, ["a", "b"], tmp_path / "x.png")


def test_confusion_matrix_plot(tmp_path: Path) -> None:
    cm = np.array([[30, 5, 7], [3, 10, 17], [0, 2, 40]])
    path = figures.confusion_matrix_plot(cm, ["cyst", "hemangioma", "metastasis"], tmp_path / "cm.png", "test")
    width, height = _open(path)
    assert 300 <= width <= 1200 and 300 <= height <= 1200
    empty_row = np.array([[0, 0], [4, 6]])  # a class absent from the test set must not divide by zero
    _open(figures.confusion_matrix_plot(empty_row, ["a", "b"], tmp_path / "cm2.png"))


def test_learning_curves_and_results_bar(tmp_path: Path) -> None:
    history = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_auc": 0.5 + e / 40, "val_f1": 0.4 + e / 50}
        for e in range(1, 11)
    ]
    width, height = _open(figures.learning_curves(history, tmp_path / "curves.png", "resnet18 baseline seed 0"))
    assert 800 <= width <= 1200 and 300 <= height <= 600
    _open(figures.learning_curves(history[:1], tmp_path / "one.png"))
    values = {"baseline": [0.76, 0.80, 0.74], "genmix-dcgan": [0.77, 0.75, 0.76], "mixup": [0.71]}
    _open(figures.results_bar(values, tmp_path / "bar.png", "macro F1", "macro F1"))
