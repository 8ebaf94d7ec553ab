"""Each figure writes one PNG of the figure's size that is not blank, and draws what it says: the sample grid's
tiles are the input images in class order with their λ, t-SNE plots every point, the confusion matrix shows the
counts and row shares, the learning curves plot the history; for gray and RGB data and tiny inputs.

The figure functions return only the PNG's path; the tests read the drawn ``Figure`` by wrapping
``figures._save`` (the one place every figure goes through before it is written)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from PIL import Image

from models import figures
from models.datasets import Split


def _split(n_per_class: int, num_classes: int, size: int, channels: int, seed: int = 0) -> Split:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n_per_class * num_classes, size, size, channels), dtype=np.uint8)
    return Split(images, np.repeat(np.arange(num_classes), n_per_class))


@pytest.fixture
def drawn(monkeypatch: pytest.MonkeyPatch) -> list[Figure]:
    """Every figure the functions save during the test, in order."""
    saved: list[Figure] = []
    save = figures._save

    def capture(fig: Figure, path: Path) -> Path:
        saved.append(fig)
        return save(fig, path)

    monkeypatch.setattr(figures, "_save", capture)
    return saved


def _open(path: Path, fig: Figure) -> tuple[int, int]:
    """The PNG decodes, has the figure's size in pixels, and is not blank; returns (width, height)."""
    assert path.is_file()
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("L"), dtype=np.float64)
    expected = np.round(fig.get_size_inches() * figures.DPI).astype(int)
    assert abs(pixels.shape[1] - expected[0]) <= 1 and abs(pixels.shape[0] - expected[1]) <= 1
    assert (pixels < 250).mean() > 0.01 and pixels.std() > 5, "the PNG is blank"
    return pixels.shape[1], pixels.shape[0]


def _tiles(row, size: int, num_classes: int, per_class: int) -> list[list[np.ndarray]]:
    """The grid row's image cut into tiles, per class group; gaps between tiles must be white."""
    mosaic = np.asarray(row.images[0].get_array())
    mosaic = mosaic[..., None] if mosaic.ndim == 2 else mosaic
    group = per_class * (size + figures._GAP) - figures._GAP
    assert mosaic.shape[:2] == (size, num_classes * group + (num_classes - 1) * figures._GROUP_GAP)
    tiles: list[list[np.ndarray]] = []
    white = np.ones(mosaic.shape[1], dtype=bool)
    for k in range(num_classes):
        left = k * (group + figures._GROUP_GAP)
        tiles.append([mosaic[:, left + j * (size + figures._GAP) :][:, :size] for j in range(per_class)])
        for j in range(per_class):
            white[left + j * (size + figures._GAP) :][:size] = False
    assert (mosaic[:, white] == 255).all()
    return tiles


def _check_row(tiles: list[list[np.ndarray]], images: np.ndarray, labels: np.ndarray, per_class: int) -> list[int]:
    """Class k's tiles are its first images in order, the unused slots white; returns the shown indices."""
    shown = []
    for k, row in enumerate(tiles):
        index = np.flatnonzero(labels == k)[:per_class]
        for j, tile in enumerate(row):
            if j < len(index):
                np.testing.assert_array_equal(tile, images[index[j]])
            else:
                assert (tile == 255).all()
        shown += index.tolist()
    return shown


@pytest.mark.parametrize(("channels", "size", "num_classes"), [(1, 28, 2), (3, 28, 5), (1, 64, 3)])
def test_sample_grid_rows_real_synthetic_genmix(
    tmp_path: Path, drawn: list[Figure], channels: int, size: int, num_classes: int
) -> None:
    real = _split(10, num_classes, size, channels)
    synthetic = _split(8, num_classes, size, channels, seed=1)
    rng = np.random.default_rng(2)
    n = 20
    soft = rng.dirichlet(np.ones(num_classes), n)
    genmix = (_split(n, 1, size, channels).images, soft, rng.beta(0.3, 1.0, n))
    names = [f"class {k}" for k in range(num_classes)]
    path = figures.sample_grid(real, synthetic, genmix, names, tmp_path / "grid.png", per_class=6)
    (fig,) = drawn
    width, height = _open(path, fig)
    assert 400 <= width <= 2500 and 150 <= height <= 1200
    assert width > height  # classes side by side, three rows
    rows = fig.axes
    assert [ax.get_ylabel() for ax in rows] == ["Real", "Synthetic", "GenMix"]
    assert [t.get_text() for t in rows[0].texts] == names
    _check_row(_tiles(rows[0], size, num_classes, 6), real.images, real.labels, 6)
    _check_row(_tiles(rows[1], size, num_classes, 6), synthetic.images, synthetic.labels, 6)
    shown = _check_row(_tiles(rows[2], size, num_classes, 6), genmix[0], soft.argmax(1), 6)
    assert [t.get_text() for t in rows[2].texts] == [f"λ={genmix[2][i]:.2f}" for i in shown]


def test_sample_grid_real_only_and_a_class_with_too_few_images(tmp_path: Path, drawn: list[Figure]) -> None:
    real = Split(_split(3, 2, 28, 1).images[:4], np.array([0, 0, 0, 1]))
    path = figures.sample_grid(real, None, None, ["malignant", "benign"], tmp_path / "sub" / "real.png")
    (fig,) = drawn
    width, height = _open(path, fig)
    assert width > height
    (row,) = fig.axes
    assert row.get_ylabel() == "Real" and [t.get_text() for t in row.texts] == ["malignant", "benign"]
    assert _check_row(_tiles(row, 28, 2, 8), real.images, real.labels, 8) == [0, 1, 2, 3]  # 3 + 1 of 8 slots


@pytest.mark.parametrize("n", [0, 1, 3, 5, 60])
def test_tsne_plot_handles_any_number_of_points(tmp_path: Path, drawn: list[Figure], n: int) -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(n, 16))
    labels = rng.integers(0, 3, n)
    kinds = np.array(["real", "synthetic", "genmix"])[np.arange(n) % 3]
    classes = ["cyst", "hemangioma", "metastasis"]
    path = figures.tsne_plot(features, labels, kinds, classes, tmp_path / "t.png", 0)
    (fig,) = drawn
    width, height = _open(path, fig)
    assert 500 <= width <= 1000 and 400 <= height <= 900
    (ax,) = fig.axes
    groups = {(kind, label) for kind, label in zip(kinds.tolist(), labels.tolist(), strict=True)}
    assert len(ax.collections) == len(groups)  # one scatter per (kind, class) present
    assert sum(len(c.get_offsets()) for c in ax.collections) == n  # every point, once
    legends = [[t.get_text() for t in legend.get_texts()] for legend in fig.legends]
    kind_names = [{"genmix": "GenMix"}.get(k, k.capitalize()) for k in ("real", "synthetic", "genmix") if k in kinds]
    assert legends == [classes] + ([kind_names] if n else [])
    title = ax.get_title()
    if n == 0:
        assert [t.get_text() for t in ax.texts] == ["no points"]
    elif n < 4:
        assert title.startswith("first two features")
    else:
        assert title.startswith("t-SNE (perplexity")


def test_tsne_plot_rejects_unknown_kinds_and_mismatched_lengths(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown kinds"):
        figures.tsne_plot(np.zeros((4, 2)), [0, 1, 0, 1], ["real"] * 3 + ["fake"], ["a", "b"], tmp_path / "x.png")
    with pytest.raises(ValueError, match="differ in length"):
        figures.tsne_plot(np.zeros((4, 2)), [0, 1, 0], ["real"] * 4, ["a", "b"], tmp_path / "x.png")


def _cells(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.axes[0].texts]


def test_confusion_matrix_plot(tmp_path: Path, drawn: list[Figure]) -> None:
    cm = np.array([[30, 5, 7], [3, 10, 17], [0, 2, 40]])
    names = ["cyst", "hemangioma", "metastasis"]
    path = figures.confusion_matrix_plot(cm, names, tmp_path / "cm.png", "test")
    width, height = _open(path, drawn[0])
    assert 300 <= width <= 1200 and 300 <= height <= 1200
    # the count in each cell, and its share of the true class (row) in brackets
    assert _cells(drawn[0]) == [
        "30\n(71%)", "5\n(12%)", "7\n(17%)",
        "3\n(10%)", "10\n(33%)", "17\n(57%)",
        "0\n(0%)", "2\n(5%)", "40\n(95%)",
    ]  # fmt: skip
    ax = drawn[0].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == names and ax.get_title() == "test"
    empty_row = np.array([[0, 0], [4, 6]])  # a class absent from the test set must not divide by zero
    _open(figures.confusion_matrix_plot(empty_row, ["a", "b"], tmp_path / "cm2.png"), drawn[1])
    assert _cells(drawn[1]) == ["0\n(0%)", "0\n(0%)", "4\n(40%)", "6\n(60%)"]


def test_learning_curves(tmp_path: Path, drawn: list[Figure]) -> None:
    history = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_auc": 0.5 + e / 40, "val_f1": 0.4 + e / 50}
        for e in range(1, 11)
    ]
    path = figures.learning_curves(history, tmp_path / "curves.png", "resnet18 baseline seed 0")
    width, height = _open(path, drawn[0])
    assert 800 <= width <= 1200 and 300 <= height <= 600
    assert drawn[0].get_suptitle() == "resnet18 baseline seed 0"
    for ax, names in zip(drawn[0].axes, (["train_loss", "val_loss"], ["val_auc", "val_f1"]), strict=True):
        assert [line.get_label() for line in ax.get_lines()] == names  # losses left, the other metrics right
        for line, name in zip(ax.get_lines(), names, strict=True):
            np.testing.assert_allclose(line.get_xdata(), [row["epoch"] for row in history])
            np.testing.assert_allclose(line.get_ydata(), [row[name] for row in history])
    _open(figures.learning_curves(history[:1], tmp_path / "one.png"), drawn[1])
    assert [len(line.get_xdata()) for ax in drawn[1].axes for line in ax.get_lines()] == [1, 1, 1, 1]
