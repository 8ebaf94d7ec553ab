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


class _OneOrList(click.ParamType):
    """``0.3`` or ``0.1,0.3,1``: one value, or a list the study chooses from per seed on validation."""

    def __init__(self, kind: type | click.Choice) -> None:
        self.kind = kind
        self.name = "VALUE[,VALUE...]"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        if not isinstance(value, str):
            return value
        parts = _csv(value)
        if isinstance(self.kind, click.Choice):
            values = [self.kind.convert(part, param, ctx) for part in parts]
        else:
            try:
                values = [self.kind(part) for part in parts]
            except ValueError:
                self.fail(f"{value!r} is not a number or a comma-separated list of numbers", param, ctx)
        if not values:
            self.fail("give one value or a comma-separated list", param, ctx)
        return values[0] if len(values) == 1 else values


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


def _default(field: str) -> Any:
    """The spec's default for ``field``: every option below shows the same default the API documents."""
    from models.spec import ExperimentSpec

    return ExperimentSpec.model_fields[field].get_default(call_default_factory=True)


def _help(field: str) -> str:
    from models.spec import ExperimentSpec

    return ExperimentSpec.model_fields[field].description or ""


def _choices(field: str) -> click.Choice:
    from typing import get_args

    from models.spec import ExperimentSpec

    annotation = ExperimentSpec.model_fields[field].annotation
    values = [v for arg in (get_args(annotation) or (annotation,)) for v in (get_args(arg) or (arg,))]
    return click.Choice([v for v in values if isinstance(v, str)])


@click.command("run")
@click.option(
    "--dataset",
    "dataset_path",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="MedMNIST-layout .npz, an ImageFolder directory, or a folder of files (DICOM, PNG...) with labels.csv.",
)
@click.option("--image-size", type=click.IntRange(8, 1024), default=None,
              help="Resize every image (or ROI crop) to this square.")  # fmt: skip
@click.option(
    "--window", default=None,
    help="DICOM CT window: abdomen (default), liver, mediastinum, lung, bone, brain, file (the file's own VOI) "
    "or custom (with --window-width and --window-level).",
)  # fmt: skip
@click.option("--window-width", type=float, default=None, help="Custom CT window width (HU).")
@click.option("--window-level", type=float, default=None, help="Custom CT window level (HU).")
@click.option("--frames", default=None, help="Multi-frame DICOM rule: middle (default), first or mip.")
@click.option("--roi", default=None, help="labels.csv regions of interest: crop (default) or ignore.")
@click.option("--roi-margin", type=float, default=None, help="Context around an ROI crop (default 0.2).")
@click.option(
    "--generator",
    "--generators",
    "generators",
    default=",".join(_default("generators")),
    show_default=True,
    help="Generator(s), comma-separated.",
)
@click.option("--arms", default=",".join(_default("arms")), show_default=True, help=_help("arms"))
@click.option(
    "--ratio", type=_OneOrList(float), default=_default("synthetic_ratio"), show_default=True,
    help=_help("synthetic_ratio"),
)  # fmt: skip
@click.option("--alpha", type=_OneOrList(float), default=_default("alpha"), show_default=True, help=_help("alpha"))
@click.option("--beta", type=float, default=_default("beta"), show_default=True, help=_help("beta"))
@click.option(
    "--mixup-alpha", type=float, default=_default("mixup_alpha"), show_default=True, help=_help("mixup_alpha")
)
@click.option(
    "--pool", type=_OneOrList(_choices("partner_pool")), default=_default("partner_pool"), show_default=True,
    help=_help("partner_pool"),
)  # fmt: skip
@click.option(
    "--class-balanced/--no-class-balanced", default=_default("class_balanced"), show_default=True,
    help=_help("class_balanced"),
)  # fmt: skip
@click.option(
    "--mix-prob", type=_OneOrList(float), default=_default("mix_prob"), show_default=True, help=_help("mix_prob")
)
@click.option("--classifier", type=_choices("classifier"), default=None, help=_help("classifier"))
@click.option(
    "--weights",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Local ImageNet weights file for vgg16/resnet18 (.pth or .safetensors).",
)
@click.option("--profile", type=_choices("profile"), default=_default("profile"), show_default=True)
@click.option("--epochs", type=int, default=None)
@click.option("--batch-size", type=int, default=None)
@click.option("--lr", type=float, default=None)
@click.option("--patience", type=int, default=None)
@click.option("--classifier-config", default=None, help="JSON classifier settings, e.g. '{\"weight_decay\": 1e-4}'.")
@click.option(
    "--generator-config",
    default=None,
    help='JSON settings per generator, e.g. \'{"dcgan": {"iterations": 500}}\'.',
)
@click.option(
    "--seeds", default=",".join(map(str, _default("seeds"))), show_default=True, help="Comma-separated seeds."
)
@click.option(
    "--classifier-seeds", type=int, default=_default("classifier_seeds_per_generator"), show_default=True,
    help=_help("classifier_seeds_per_generator"),
)  # fmt: skip
@click.option("--filter-tau", type=float, default=_default("filter_tau"), help=_help("filter_tau"))
@click.option("--device", type=_choices("device"), default=_default("device"), show_default=True)
@click.option("--figures/--no-figures", default=_default("figures"), show_default=True, help=_help("figures"))
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("genmix-out"),
    show_default=True,
    help="Output directory; rerunning with the same one resumes.",
)
@click.option(
    "--workers", type=click.IntRange(1, 64), default=1, show_default=True,
    help="Run the experiment's units (generator seeds, classifiers) on this many processes side by side, each "
    "with GENMIX_TORCH_THREADS torch threads (default: the cores shared out); with the same threads the results "
    "are a one-process run's.",
)  # fmt: skip
def run_command(
    dataset_path: Path,
    image_size: int | None,
    window: str | None,
    window_width: float | None,
    window_level: float | None,
    frames: str | None,
    roi: str | None,
    roi_margin: float | None,
    generators: str,
    arms: str,
    ratio: float | list[float],
    alpha: float | list[float],
    beta: float,
    mixup_alpha: float,
    pool: str | list[str],
    class_balanced: bool,
    mix_prob: float | list[float],
    classifier: str | None,
    weights: str | None,
    profile: str,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    patience: int | None,
    classifier_config: str | None,
    generator_config: str | None,
    seeds: str,
    classifier_seeds: int,
    filter_tau: float | None,
    device: str,
    figures: bool,
    out_dir: Path,
    workers: int,
) -> None:
    """Train generators, run every arm per seed, print the Table-1-style table and write DIR/results.json."""
    from pydantic import ValidationError

    from cli.parallel import UnitFailed, default_threads, run_units_in_parallel
    from core.jobspec import with_server_settings
    from core.settings import get_settings
    from models.datasets import DatasetError, PixelRules, ReadOptions, load_dataset
    from models.datasets.options import describe_decode
    from models.experiment import run_experiment
    from models.runtime import configure_threads
    from models.spec import LOCAL_FILES, ExperimentSpec
    from models.verdict import design_notice

    settings = get_settings()
    configure_threads(settings.torch_threads)
    flags = {"weights": weights, "epochs": epochs, "batch_size": batch_size, "lr": lr, "patience": patience}
    classifier_settings = {**_json_option(classifier_config, "--classifier-config"),
                           **{k: v for k, v in flags.items() if v is not None}}  # fmt: skip
    try:
        spec = ExperimentSpec.model_validate(dict(  # a local user: the file settings may name local paths
            generators=_csv(generators),
            arms=_csv(arms),
            synthetic_ratio=ratio,
            alpha=alpha,
            beta=beta,
            mixup_alpha=mixup_alpha,
            partner_pool=pool,
            class_balanced=class_balanced,
            mix_prob=mix_prob,
            profile=profile,
            classifier=classifier,
            classifier_settings=classifier_settings,
            generator_settings=_json_option(generator_config, "--generator-config"),
            seeds=_seeds(seeds),
            classifier_seeds_per_generator=classifier_seeds,
            filter_tau=filter_tau,
            device=device,
            figures=figures,
        ), context={LOCAL_FILES: True})  # fmt: skip
    except ValidationError as exc:
        raise click.UsageError(_problems(exc)) from None
    spec = with_server_settings(spec, settings, local_files=True)
    try:
        pixels = PixelRules.from_fields(window, window_width, window_level, frames, roi, roi_margin)
    except DatasetError as exc:
        raise click.UsageError(str(exc)) from None
    read_options = ReadOptions(image_size=image_size, pixels=pixels)
    try:
        dataset = load_dataset(dataset_path, read_options)
    except DatasetError as exc:
        raise click.ClickException(str(exc)) from None
    counts = dataset.counts()
    click.echo(
        f"{dataset.name}: {dataset.num_classes} classes {dataset.class_names}, {dataset.channels} channel(s), "
        f"{dataset.image_size[0]}x{dataset.image_size[1]}; train/val/test per class: "
        f"{counts['train']} / {counts['val']} / {counts['test']}",
        err=True,
    )
    if dataset.patients() is not None:
        click.echo(f"patients per split: {dataset.patients()}", err=True)
    if dataset.decode is not None:
        click.echo(f"pixels: {describe_decode(dataset.decode)}", err=True)
    notice = design_notice(len(spec.seeds), spec.classifier_seeds_per_generator, spec.arms)
    if notice is not None:
        click.echo(f"note: {notice}", err=True)
    runs = spec.planned_runs()
    if twins := sum(planned.filtered for planned in runs):
        click.echo(f"note: filter τ = {spec.filter_tau}: {twins} of the {len(runs)} classifiers are filtered twins of "
                   "synthetic arms, trained on the synthetic images the filter keeps", err=True)  # fmt: skip
    started = time.monotonic()
    try:
        if workers > 1:
            threads = settings.torch_threads or default_threads(workers)
            results = run_units_in_parallel(
                dataset, dataset_path, read_options, spec, out_dir, workers, threads, TqdmObserver()
            )
        else:
            results = run_experiment(dataset, spec, out_dir, TqdmObserver())
    except (ValueError, UnitFailed) as exc:
        raise click.ClickException(str(exc)) from None
    _show_and_report(results, out_dir)
    click.echo(
        f"\nresults: {out_dir / 'results.json'}  figures: {out_dir / 'figures'}  ({time.monotonic() - started:.0f} s)",
        err=True,
    )


def _show_and_report(results: dict[str, Any], out_dir: Path) -> None:
    """Print the verdict lines, the table and the quality rows, and write ``out_dir/report.md``."""
    from models.report import markdown_report, reference_comparisons
    from models.table import format_quality, format_table
    from models.verdict import interval_cover, verdict_lines

    for line in verdict_lines(results["verdicts"]):
        click.echo(line)
    if results["verdicts"]["lines"]:
        cover = interval_cover(results["verdicts"])
        click.echo(f"(macro F1 points, 95 % intervals; Holm-adjusted; intervals cover {cover})\n")
    references = [c["line"] for c in reference_comparisons(results["records"])]
    for line in references:
        click.echo(line)
    if references:
        click.echo("")
    click.echo(format_table(results["summary"], results["dataset"]["class_names"]))
    if results.get("quality"):
        network = results["quality"][0].get("feature_net") or "n/a"
        click.echo(f"\nGenerator quality (KID and diversity on features of {network}; see docs/GENERATORS.md):")
        click.echo(format_quality(results["quality"]))
    command = "genmix " + " ".join(shlex.quote(arg) for arg in sys.argv[1:])
    (out_dir / "report.md").write_text(markdown_report(results, command), encoding="utf-8")


@click.command("merge")
@click.argument("parts", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the merged results.json and report.md.",
)  # fmt: skip
def merge_command(parts: tuple[Path, ...], out_dir: Path) -> None:
    """Merge runs of one study that differ in their seeds, arms, generators or filter (``genmix run`` folders or
    their results.json, from other machines or sessions) into one results.json and report.md, verdicts over all."""
    from models.checkpoint import write_json
    from models.studies import MergeError, merge_results

    loaded = []
    for part in parts:
        path = part / "results.json" if part.is_dir() else part
        try:
            loaded.append((str(part), json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError) as exc:
            raise click.ClickException(f"{path}: not a readable results.json ({exc})") from None
    try:
        merged = merge_results(loaded)
    except (MergeError, KeyError) as exc:
        what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        raise click.ClickException(f"cannot merge: {what}") from None
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "results.json", merged)
    _show_and_report(merged, out_dir)
    click.echo(f"\nmerged {len(parts)} runs, seeds {merged['config']['seeds']}: {out_dir / 'results.json'}", err=True)


def _problems(exc: Any) -> str:
    """A pydantic ValidationError as one line per problem, named by the spec field (the API says the same)."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "spec"
        given = repr(error.get("input"))
        given = given if len(given) <= 60 else given[:57] + "..."
        lines.append(f"{where}: {error['msg']}" + ("" if error["type"] == "value_error" else f" (got {given})"))
    return "invalid experiment:\n  " + "\n  ".join(lines)


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
@click.option("--alpha", type=float, default=_default("alpha"), show_default=True, help=_help("alpha"))
@click.option("--beta", type=float, default=_default("beta"), show_default=True, help=_help("beta"))
@click.option("--pool", type=_choices("partner_pool"), default=_default("partner_pool"), show_default=True)
@click.option("--class-balanced/--no-class-balanced", default=_default("class_balanced"), show_default=True)
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
    from models.genmix import GenMixConfig

    if count < 1:
        raise click.BadParameter("--count must be at least 1")
    try:
        config = GenMixConfig(alpha=alpha, beta=beta, pool=pool, class_balanced=class_balanced)  # type: ignore[arg-type]
        written = export_genmix(real_path, syn_path, out_path, count=count, seed=seed, config=config)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(str(written))


def register(group: click.Group) -> None:
    group.add_command(run_command)
    group.add_command(mix_command)
    group.add_command(merge_command)
