"""``genmix run`` and ``genmix mix``: the science pipeline from the command line (no service needed)."""

from __future__ import annotations

import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import click


def _csv(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _seeds(value: str) -> list[int]:
    try:
        return [int(part) for part in _csv(value)]
    except ValueError:
        raise click.BadParameter(f"seeds must be comma-separated integers, got {value!r}") from None


def _json_option(value: str | None, what: str) -> dict[str, Any]:
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{what} must be a JSON object: {exc}") from None
    if not isinstance(parsed, dict):
        raise click.BadParameter(f"{what} must be a JSON object")
    return parsed


class TqdmObserver:
    """Shows one progress bar per stage on stderr and a line per finished run."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self._tqdm = tqdm
        self.bar: Any = None

    def stage(self, name: str, index: int, count: int) -> None:
        self._close()
        self.bar = self._tqdm(
            total=1,
            desc=f"[{index + 1}/{count}] {name}",
            unit="step",
            leave=False,
            dynamic_ncols=True,
            file=sys.stderr,
        )

    def progress(self, step: int, total: int, metrics: dict[str, float]) -> None:
        if self.bar is None:
            return
        self.bar.total = max(total, 1)
        self.bar.n = min(step, self.bar.total)
        self.bar.set_postfix({k: f"{v:.3f}" for k, v in metrics.items()}, refresh=False)
        self.bar.refresh()

    def should_stop(self) -> bool:
        return False

    def run_finished(self, record: dict[str, Any]) -> None:
        m = record["metrics"]
        auc = "n/a" if m["auc"] is None else f"{m['auc']:.3f}"
        self._tqdm.write(
            f"{record['run_id']}: acc {m['accuracy']:.3f}  macro-F1 {m['macro_f1']:.3f}  AUC {auc}  "
            f"(best epoch {record['best_epoch']}/{record['epochs_trained']})",
            file=sys.stderr,
        )

    def artifact(self, kind: str, path: Path, meta: dict[str, Any]) -> None:
        return None

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@click.command("run")
@click.option(
    "--dataset",
    "dataset_path",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="MedMNIST-layout .npz or an ImageFolder directory.",
)
@click.option(
    "--generator",
    "--generators",
    "generators",
    default="dcgan",
    show_default=True,
    help="Generator(s), comma-separated.",
)
@click.option("--arms", default="baseline,mixup,augmix,generative,genmix", show_default=True)
@click.option(
    "--ratio",
    type=float,
    default=0.5,
    show_default=True,
    help="Synthetic images per real image, per class (0.5 = half as many).",
)
@click.option("--alpha", type=float, default=0.3, show_default=True, help="λ ~ Beta(α, β) for GenMix; MixUp's α.")
@click.option("--beta", type=float, default=1.0, show_default=True, help="GenMix Beta's second parameter.")
@click.option(
    "--pool",
    type=click.Choice(["real+synthetic", "synthetic"]),
    default="real+synthetic",
    show_default=True,
    help="Where GenMix partners x_S come from.",
)
@click.option(
    "--class-balanced/--no-class-balanced",
    default=False,
    show_default=True,
    help="Draw GenMix partners' classes uniformly (feeds the minority class).",
)
@click.option("--mix-prob", type=float, default=1.0, show_default=True, help="Share of samples GenMix mixes.")
@click.option("--classifier", default=None, help="vgg16, resnet18 or smallcnn (default: the profile's).")
@click.option(
    "--weights",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Local ImageNet weights file for vgg16/resnet18 (.pth or .safetensors).",
)
@click.option("--profile", type=click.Choice(["quick", "paper"]), default="quick", show_default=True)
@click.option("--epochs", type=int, default=None)
@click.option("--batch-size", type=int, default=None)
@click.option("--lr", type=float, default=None)
@click.option("--patience", type=int, default=None)
@click.option(
    "--generator-config",
    default=None,
    help='JSON overrides per generator, e.g. \'{"dcgan": {"iterations": 500}}\'.',
)
@click.option("--seeds", default="0", show_default=True, help="Comma-separated seeds.")
@click.option("--device", default="auto", show_default=True)
@click.option("--no-figures", is_flag=True, help="Skip figures (faster).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("genmix-out"),
    show_default=True,
    help="Output directory; rerunning with the same one resumes.",
)
def run_command(
    dataset_path: Path,
    generators: str,
    arms: str,
    ratio: float,
    alpha: float,
    beta: float,
    pool: str,
    class_balanced: bool,
    mix_prob: float,
    classifier: str | None,
    weights: str | None,
    profile: str,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    patience: int | None,
    generator_config: str | None,
    seeds: str,
    device: str,
    no_figures: bool,
    out_dir: Path,
) -> None:
    """Train generators, run every arm per seed, print the Table-1-style table and write DIR/results.json."""
    from models.data import DatasetError, load_dataset
    from models.experiment import ExperimentConfig, run_experiment
    from models.report import format_quality, format_table
    from models.runtime import configure_threads
    from models.study import markdown_report

    configure_threads()
    overrides = {
        k: v
        for k, v in {
            "name": classifier,
            "weights": weights,
            "epochs": epochs,
            "batch_size": batch_size,
            "lr": lr,
            "patience": patience,
        }.items()
        if v is not None
    }
    config = ExperimentConfig(
        generators=_csv(generators),
        arms=_csv(arms),
        synthetic_ratio=ratio,
        alpha=alpha,
        beta=beta,
        partner_pool=pool,
        class_balanced=class_balanced,
        mix_prob=mix_prob,
        profile=profile,
        seeds=_seeds(seeds),
        classifier=overrides,
        generator=_json_option(generator_config, "--generator-config"),
        device=device,
        figures=not no_figures,
    )
    try:
        dataset = load_dataset(dataset_path)
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from None
    counts = dataset.counts()
    click.echo(
        f"{dataset.name}: {dataset.num_classes} classes {dataset.class_names}, {dataset.channels} channel(s), "
        f"{dataset.image_size[0]}x{dataset.image_size[1]}; train/val/test per class: "
        f"{counts['train']} / {counts['val']} / {counts['test']}",
        err=True,
    )
    started = time.monotonic()
    try:
        results = run_experiment(dataset, config, out_dir, TqdmObserver())
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(format_table(results["summary"], dataset.class_names))
    if results.get("quality"):
        click.echo("\nGenerator quality (KID and diversity on features of a fixed-seed random conv net; see docs):")
        click.echo(format_quality(results["quality"]))
    command = "genmix " + " ".join(shlex.quote(arg) for arg in sys.argv[1:])
    (out_dir / "report.md").write_text(markdown_report(results, command), encoding="utf-8")
    click.echo(
        f"\nresults: {out_dir / 'results.json'}  figures: {out_dir / 'figures'}  ({time.monotonic() - started:.0f} s)",
        err=True,
    )


@click.command("mix")
@click.option(
    "--real",
    "real_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="MedMNIST-layout .npz (its train split is used).",
)
@click.option(
    "--synthetic",
    "syn_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help=".npz with `images` and `labels` (as `genmix run` writes).",
)
@click.option("--alpha", type=float, default=0.3, show_default=True)
@click.option("--beta", type=float, default=1.0, show_default=True)
@click.option("--pool", type=click.Choice(["real+synthetic", "synthetic"]), default="real+synthetic", show_default=True)
@click.option("--class-balanced/--no-class-balanced", default=False, show_default=True)
@click.option("--count", type=int, required=True, help="Number of GenMix images to export.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
def mix_command(
    real_path: Path,
    syn_path: Path,
    alpha: float,
    beta: float,
    pool: str,
    class_balanced: bool,
    count: int,
    seed: int,
    out_path: Path,
) -> None:
    """Export a batch of GenMix images (Eq. 1) for a lab's own training code."""
    from models.export import export_genmix

    if count < 1:
        raise click.BadParameter("--count must be at least 1")
    try:
        written = export_genmix(
            real_path,
            syn_path,
            out_path,
            count=count,
            seed=seed,
            alpha=alpha,
            beta=beta,
            pool=pool,
            class_balanced=class_balanced,
        )
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(written))


def register(group: click.Group) -> None:
    group.add_command(run_command)
    group.add_command(mix_command)
