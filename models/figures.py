"""The paper's figures and the reports' plots; each function writes one PNG and returns its path.

Figures are drawn on matplotlib's Agg canvas through the object API (no pyplot), so nothing depends on a
display or on global plotting state shared with other threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from sklearn.manifold import TSNE
from sklearn.metrics import ConfusionMatrixDisplay

from models.datasets import Split

DPI = 100
_GAP = 2  # pixels between images in a grid
_GROUP_GAP = 8  # extra pixels between class groups
_KIND_MARKERS = {"real": ".", "synthetic": "^", "genmix": "o"}


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def _class_colour(k: int, num_classes: int) -> tuple[float, float, float, float]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if num_classes <= 10 else "tab20"]
    return cmap(k % cmap.N)


# ------------------------------------------------------------------------------------------ Fig. 3


def _pick(labels: np.ndarray, k: int, per_class: int) -> np.ndarray:
    return np.flatnonzero(labels == k)[:per_class]


def _mosaic(
    images: np.ndarray, groups: list[np.ndarray], per_class: int
) -> tuple[np.ndarray, list[list[tuple[int, int]]]]:
    """Lay ``images[groups[k]]`` out left to right, class by class; also return each tile's corner."""
    _, h, w, c = images.shape
    group_width = per_class * (w + _GAP) - _GAP
    width = len(groups) * group_width + (len(groups) - 1) * _GROUP_GAP
    canvas = np.full((h, width, c), 255, dtype=np.uint8)
    corners: list[list[tuple[int, int]]] = []
    for k, index in enumerate(groups):
        left = k * (group_width + _GROUP_GAP)
        corners.append([])
        for j, i in enumerate(index):
            x0 = left + j * (w + _GAP)
            canvas[:, x0 : x0 + w] = images[i]
            corners[-1].append((x0, 0))
    return canvas, corners


def sample_grid(
    real: Split,
    synthetic: Split | None,
    genmix: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
    class_names: Sequence[str],
    path: Path,
    per_class: int = 8,
) -> Path:
    """Fig. 3: rows real / synthetic / GenMix, columns grouped by class (GenMix by its soft label's argmax).

    ``genmix`` is ``(images uint8 NHWC, soft_labels (N, K), lam (N,))``; each GenMix tile shows its λ.
    """
    num_classes = len(class_names)
    rows: list[tuple[str, np.ndarray, list[np.ndarray], np.ndarray | None]] = [
        ("Real", real.images, [_pick(real.labels, k, per_class) for k in range(num_classes)], None)
    ]
    if synthetic is not None:
        groups = [_pick(synthetic.labels, k, per_class) for k in range(num_classes)]
        rows.append(("Synthetic", synthetic.images, groups, None))
    if genmix is not None:
        images, soft, lam = genmix
        hard = np.asarray(soft).argmax(axis=1)
        rows.append(("GenMix", images, [_pick(hard, k, per_class) for k in range(num_classes)], np.asarray(lam)))

    h, w = real.images.shape[1:3]
    tile_in = max(0.45, min(1.0, w / 40))  # inches per tile: readable for 28 px, not huge for 128 px
    group_width = per_class * (w + _GAP) - _GAP
    total_px = num_classes * group_width + (num_classes - 1) * _GROUP_GAP
    fig_w = min(24.0, 1.2 + tile_in * total_px / (w + _GAP))
    row_h = fig_w * h / total_px + (0.25 if genmix is not None else 0.1)
    fig = Figure(figsize=(fig_w, 0.6 + row_h * len(rows)), layout="constrained")
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for r, (ax, (title, images, groups, lam)) in enumerate(zip(axes, rows, strict=True)):
        canvas, corners = _mosaic(images, groups, per_class)
        gray = canvas.shape[-1] == 1
        ax.imshow(canvas[..., 0] if gray else canvas, cmap="gray" if gray else None, vmin=0, vmax=255)
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
        ax.set_ylabel(title, fontsize=10)
        if r == 0:
            for k, name in enumerate(class_names):
                centre = k * (group_width + _GROUP_GAP) + group_width / 2
                ax.text(centre, -2, name, ha="center", va="bottom", fontsize=9)
        if lam is not None:
            for k, index in enumerate(groups):
                for (x0, _), i in zip(corners[k], index, strict=True):
                    ax.text(x0 + w / 2, h + 1, f"λ={lam[i]:.2f}", ha="center", va="top", fontsize=5)
    return _save(fig, path)


# ------------------------------------------------------------------------------------------ Fig. 4


def _embed_2d(features: np.ndarray, seed: int) -> tuple[np.ndarray, str]:
    """t-SNE to 2-D with a perplexity that fits ``n``; below 4 points, show raw axes."""
    n = len(features)
    flat = features.reshape(n, -1).astype(np.float64)
    if flat.shape[1] < 2:
        flat = np.pad(flat, ((0, 0), (0, 2 - flat.shape[1])))
    if n < 4:
        return flat[:, :2], "first two features (too few points for t-SNE)"
    perplexity = float(min(30.0, max(1.0, (n - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed)
    return tsne.fit_transform(flat), f"t-SNE (perplexity {perplexity:.1f})"


def tsne_plot(
    features: np.ndarray,
    labels: Sequence[int] | np.ndarray,
    kinds: Sequence[str] | np.ndarray,
    class_names: Sequence[str],
    path: Path,
    seed: int = 0,
) -> Path:
    """Fig. 4: t-SNE of classifier features; colour = class, marker = kind (real ·, synthetic ▲, GenMix ○)."""
    features = np.asarray(features)
    labels = np.asarray(labels, dtype=np.int64)
    kinds = np.asarray(kinds, dtype=str)
    if not (len(features) == len(labels) == len(kinds)):
        raise ValueError(f"features, labels and kinds differ in length: {len(features)}, {len(labels)}, {len(kinds)}")
    unknown = set(kinds.tolist()) - set(_KIND_MARKERS)
    if unknown:
        raise ValueError(f"unknown kinds {sorted(unknown)}; use {sorted(_KIND_MARKERS)}")
    fig = Figure(figsize=(8, 6), layout="constrained")
    ax = fig.subplots()
    num_classes = len(class_names)
    if len(features) == 0:
        ax.text(0.5, 0.5, "no points", ha="center", va="center", transform=ax.transAxes)
        method = "t-SNE"
    else:
        xy, method = _embed_2d(features, seed)
        for kind, marker in _KIND_MARKERS.items():
            for k in range(num_classes):
                mask = (kinds == kind) & (labels == k)
                if not mask.any():
                    continue
                colour = _class_colour(k, num_classes)
                style = {"facecolors": "none", "edgecolors": [colour]} if kind == "genmix" else {"c": [colour]}
                ax.scatter(
                    xy[mask, 0],
                    xy[mask, 1],
                    marker=marker,
                    s=40 if kind == "real" else 18,
                    alpha=0.8,
                    linewidths=0.8,
                    **style,
                )
    class_handles = [
        Line2D([], [], marker="s", linestyle="", color=_class_colour(k, num_classes), label=name)
        for k, name in enumerate(class_names)
    ]
    kind_handles = [
        Line2D(
            [],
            [],
            marker=m,
            linestyle="",
            color="black",
            markerfacecolor="none" if kind == "genmix" else "black",
            label={"genmix": "GenMix"}.get(kind, kind.capitalize()),
        )
        for kind, m in _KIND_MARKERS.items()
        if (kinds == kind).any()
    ]
    fig.legend(handles=class_handles, title="class", loc="outside right upper", fontsize=8)
    if kind_handles:
        fig.legend(handles=kind_handles, title="data", loc="outside right lower", fontsize=8)
    ax.set_title(method, fontsize=10)
    ax.set_xticks([])
    ax.set_yticks([])
    return _save(fig, path)


# ------------------------------------------------------------------------------------------ reports


def confusion_matrix_plot(cm: np.ndarray, class_names: Sequence[str], path: Path, title: str = "") -> Path:
    """Counts, with each row's share of its true class in brackets (what sensitivity per class reads from)."""
    cm = np.asarray(cm)
    size = 2.5 + 0.8 * len(class_names)
    fig = Figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.subplots()
    display = ConfusionMatrixDisplay(cm, display_labels=list(class_names))
    display.plot(ax=ax, cmap="Blues", colorbar=True, values_format="d", text_kw={"fontsize": 8})
    rows = cm.sum(axis=1, keepdims=True)
    shares = np.divide(cm, rows, out=np.zeros(cm.shape, dtype=float), where=rows > 0)
    for (i, j), text in np.ndenumerate(display.text_):
        text.set_text(f"{int(cm[i, j])}\n({shares[i, j]:.0%})")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def learning_curves(history: Sequence[Mapping[str, float]], path: Path, title: str = "") -> Path:
    """Losses (left) and every other numeric metric, e.g. val_auc / val_f1 (right), per epoch."""
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    keys = sorted(
        {
            k
            for row in history
            for k, v in row.items()
            if k != "epoch" and isinstance(v, int | float) and not isinstance(v, bool)
        }
    )
    loss_keys = [k for k in keys if "loss" in k]
    metric_keys = [k for k in keys if "loss" not in k]
    fig = Figure(figsize=(10, 4), layout="constrained")
    ax_loss, ax_metric = fig.subplots(1, 2)
    for ax, names, ylabel in ((ax_loss, loss_keys, "loss"), (ax_metric, metric_keys, "metric")):
        for name in names:
            xs = [e for e, row in zip(epochs, history, strict=True) if name in row]
            ys = [row[name] for row in history if name in row]
            ax.plot(xs, ys, marker="." if len(xs) < 30 else None, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if names:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)
