"""One GenMix experiment: generators per seed, then one classifier per arm and seed, then metrics and figures.

This is the whole science pipeline behind both ``genmix run`` and the service's workers; what it runs is an
:class:`models.spec.ExperimentSpec`, and where it writes is :class:`models.layout.OutputLayout`. It is
resumable: every finished piece is a file under the output folder and is skipped on a rerun with the same
folder, and unfinished generator / classifier training resumes from its last checkpoint. Randomness is
seeded per stage from the experiment seed, so the order in which stages run (or resume) never changes
their results.
"""

from __future__ import annotations

import json
import math
import platform
from dataclasses import asdict
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from models import figures
from models.arms import ArmSettings, build_arm
from models.checkpoint import atomic_path, read_json, write_json
from models.classifiers import build_classifier
from models.datasets import ImageSet, Split, load_synthetic_npz, save_synthetic_npz
from models.export import build_mixer, save_export
from models.generators import build_generator, generator_class
from models.genmix import GenMixConfig
from models.hooks import TrainHooks, stop_if_asked
from models.layout import OutputLayout, run_id
from models.quality import quality_report
from models.runtime import pick_device, seed_everything
from models.selection import FILTERED
from models.spec import ExperimentSpec, PlannedRun, classifier_seed
from models.studies import check_folder, summarize
from models.train import classifier_config, evaluate, extract_features, predict, train_classifier
from models.units import Unit, plan_units, planned_run_id

EXPORT_MAX = 2000


class Observer(Protocol):
    """What the caller (CLI or worker) learns while an experiment runs, and how it can stop it."""

    def stage(self, name: str, index: int, count: int) -> None:
        """A stage starts, e.g. ``generator dcgan seed 0`` or ``classifier genmix-dcgan seed 0``."""

    def progress(self, step: int, total: int, metrics: dict[str, float]) -> None:
        """Progress within the current stage."""

    def should_stop(self) -> bool:
        """True once the experiment should stop (cooperative cancellation)."""

    def run_finished(self, record: dict[str, Any]) -> None:
        """One arm × seed finished with its metrics (the record also written to ``runs/{run_id}.json``)."""

    def artifact(self, kind: str, path: Path, meta: dict[str, Any]) -> None:
        """A file was written: ``kind`` one of :data:`models.layout.ARTIFACT_KINDS`; ``meta`` names its generator
        and seed where it has them."""


class NullObserver:
    """An observer that ignores everything and never stops."""

    def stage(self, name: str, index: int, count: int) -> None: ...

    def progress(self, step: int, total: int, metrics: dict[str, float]) -> None: ...

    def should_stop(self) -> bool:
        return False

    def run_finished(self, record: dict[str, Any]) -> None: ...

    def artifact(self, kind: str, path: Path, meta: dict[str, Any]) -> None: ...


def run_experiment(
    dataset: ImageSet, spec: ExperimentSpec, out_dir: Path, observer: Observer | None = None
) -> dict[str, Any]:
    """Run (or resume) the whole experiment; returns the results also written to ``out_dir/results.json``."""
    return ExperimentRunner(dataset, spec, Path(out_dir), observer or NullObserver()).run()


def synthetic_counts(train_counts: list[int], ratio: float) -> list[int]:
    """Synthetic images per class: ``ratio`` × the real count of that class, at least one."""
    return [max(1, round(ratio * n)) for n in train_counts]


def _finite(value: Any) -> Any:
    """NaN and infinities become ``None`` so results stay valid JSON for every reader."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("genmix", "torch", "torchvision", "diffusers", "numpy", "scikit-learn"):
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


def resolved_config(spec: ExperimentSpec, device: torch.device | str) -> dict[str, Any]:
    """What ``config.json`` and ``results.json`` record of a study's configuration: the spec, its fixed GenMix
    settings, the classifier settings that ran (profile and overrides) and the device."""
    return {
        **spec.model_dump(mode="json"),
        "genmix_fixed": spec.fixed_genmix(),
        "classifier_resolved": asdict(classifier_config(spec.profile, spec.classifier_overrides())),
        "device": str(device),
    }


class ExperimentRunner:
    """One experiment's stages: generators → synthetic sets → classifiers per arm and seed → figures → results."""

    def __init__(self, dataset: ImageSet, spec: ExperimentSpec, out_dir: Path, observer: Observer) -> None:
        self.data = dataset
        self.config = spec
        self.out = out_dir
        self.layout = OutputLayout(out_dir)
        self.observer = observer
        self.device = pick_device(spec.device)
        self.classifier_config = classifier_config(spec.profile, spec.classifier_overrides())
        self.fixed = spec.fixed_genmix()
        self.fixed_ratio = float(self.fixed["synthetic_ratio"])
        self.genmix_config = self._genmix_config(self.fixed)  # the fixed arm's: also the export's and the figures'
        self.hooks_base: dict[str, Any] = dict(should_stop=observer.should_stop, progress=observer.progress)
        if hasattr(observer, "resumed"):  # optional: ``resumed(step, total)`` when training picks up a checkpoint
            self.hooks_base["resumed"] = observer.resumed
        self.generators = spec.trained_generators
        self.stages = [(g, s) for s in spec.seeds for g in self.generators]
        self.runs = spec.planned_runs()
        self.filtering = spec.filter_tau is not None and bool(self.generators)
        self.filters: dict[tuple[str, int], np.ndarray] = {}  # (generator, seed) -> baseline confidence per image
        self.filter_counts: dict[tuple[str, int, float], dict[str, list[int]]] = {}
        self._subsets: dict[tuple[str, int, float, bool], Split] = {}  # (generator, seed, ratio, filtered)
        filter_stages = len(spec.seeds) if self.filtering else 0
        self.stage_count = len(self.stages) + filter_stages + len(self.runs) + (1 if spec.figures else 0)
        self.stage_index = 0

    def _genmix_config(self, settings: dict[str, Any]) -> GenMixConfig:
        return GenMixConfig(
            alpha=float(settings["alpha"]),
            beta=self.config.beta,
            pool=settings["partner_pool"],
            class_balanced=self.config.class_balanced,
            mix_prob=float(settings["mix_prob"]),
        )

    # -- stages ---------------------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        self.out.mkdir(parents=True, exist_ok=True)
        self.write_config()
        synthetic: dict[tuple[str, int], Split] = {}
        for generator, seed in self.stages:
            synthetic[(generator, seed)] = self.synthetic_set(generator, seed)
        if self.filtering:
            for seed in self.config.seeds:
                self.filter_stage(seed, synthetic)
        records = []
        for planned in self.runs:
            syn = self.synthetic_for(planned, synthetic) if planned.generator else None
            records.append(self.classifier_run(planned, syn))
        return self.assemble(records, synthetic)

    def write_config(self) -> None:
        """Write ``config.json``, the resolved configuration and the dataset it ran on; refuse (before anything is
        written) a folder whose finished runs were made with other settings, which a rerun would reuse."""
        asked = {**self.resolved_config(), "dataset": self.dataset_info()}
        if self.layout.config.is_file():
            check_folder(read_json(self.layout.config), asked, str(self.out))
        self.out.mkdir(parents=True, exist_ok=True)
        write_json(self.layout.config, asked)

    def assemble(self, records: list[dict[str, Any]], synthetic: dict[tuple[str, int], Split]) -> dict[str, Any]:
        """The last stage: sample figures, then ``results.json`` from every run's record and generator's files."""
        if self.config.figures:
            self._next_stage("figures")
            self.sample_figures(synthetic)
        self._stop_if_asked()
        generators = {f"{g}-seed{s}": self.generator_info(g, s) for g, s in self.stages}
        results = {
            "config": self.resolved_config(),
            "versions": versions(),
            "dataset": self.dataset_info(),
            "records": records,
            "generators": generators,
            **summarize(records, generators, self.data.class_names, self.fixed_ratio),
        }
        path = self.layout.results
        write_json(path, results)
        self.observer.artifact("results", path, {})
        return results

    # -- one unit at a time (models.units: the service fans these out over workers) ---------------
    def units(self) -> list[Unit]:
        return plan_units(self.config)

    def finished_records(self) -> list[dict[str, Any]]:
        """The records of this plan's classifier runs already in the folder (a resumed or an extended job's), in plan
        order, each in the role this plan gives it."""
        paths = [(planned, self.layout.run_record(self._run_id(planned))) for planned in self.runs]
        return [{**read_json(path), **self._grid_role(planned)} for planned, path in paths if path.is_file()]

    def finished_exports(self) -> list[Path]:
        """The GenMix exports of this plan's generators and seeds already in the folder (an extended job's)."""
        paths = (self.layout.export(generator, seed) for generator, seed in self.stages)
        return [path for path in paths if path.is_file()]

    def unit_done(self, unit: Unit) -> bool:
        """Whether ``unit``'s output is on disk (a rerun skips it); the assemble unit: ``results.json``."""
        if unit.kind == "generator":
            assert unit.generator is not None and unit.seed is not None
            return self.layout.synthetic(unit.generator, unit.seed).is_file()
        if unit.kind == "filter":
            assert unit.seed is not None
            return all(self.layout.synthetic_filter(g, unit.seed).is_file() for g in self.generators)
        if unit.kind == "classifier":
            assert unit.run is not None
            return self.layout.run_record(self._run_id(self.runs[unit.run])).is_file()
        return self.layout.results.is_file()

    def run_unit(self, unit: Unit) -> dict[str, Any] | None:
        """Run (or resume, or skip when finished) one unit, reading only its dependencies' finished files.

        Returns the run record of a classifier unit, the results of the assemble unit, else None. The stage it
        reports has the index it has in a one-worker run, so a job's stage list reads the same however many
        workers share it."""
        self.stage_index = unit.index
        if unit.kind == "generator":
            assert unit.generator is not None and unit.seed is not None
            self.synthetic_set(unit.generator, unit.seed)
            return None
        if unit.kind == "filter":
            assert unit.seed is not None
            self.filter_stage(unit.seed, self._synthetic_of(unit.seed))
            return None
        if unit.kind == "classifier":
            assert unit.run is not None
            planned = self.runs[unit.run]
            syn = None
            if planned.generator is not None and not self.layout.run_record(self._run_id(planned)).is_file():
                if planned.filtered:
                    self._load_filters(planned.seed)
                syn = self.synthetic_for(planned, self._synthetic_of(planned.seed, [planned.generator]))
            return self.classifier_run(planned, syn)
        self.write_config()
        records = [read_json(self.layout.run_record(self._run_id(planned))) for planned in self.runs]
        synthetic: dict[tuple[str, int], Split] = {}
        for seed in self.config.seeds:
            synthetic.update(self._synthetic_of(seed))
        if self.filtering:
            for seed in self.config.seeds:
                self._load_filters(seed)
        for planned in self.runs:  # the filter counts per generator and ratio that results.json reports
            if planned.generator is not None:
                self.synthetic_for(planned, synthetic)
        return self.assemble(records, synthetic)

    def _synthetic_of(self, seed: int, generators: list[str] | None = None) -> dict[tuple[str, int], Split]:
        """The finished synthetic sets of ``seed`` (written atomically by their generator units)."""
        found = {}
        for generator in self.generators if generators is None else generators:
            path = self.layout.synthetic(generator, seed)
            if not path.is_file():
                raise FileNotFoundError(f"the synthetic set of {generator} seed {seed} is not there yet")
            found[(generator, seed)] = load_synthetic_npz(path)
        return found

    def _load_filters(self, seed: int) -> None:
        for generator in self.generators:
            stored = read_json(self.layout.synthetic_filter(generator, seed))
            self.filters[(generator, seed)] = np.asarray(stored["confidence"], dtype=np.float64)

    def _next_stage(self, name: str) -> None:
        self.observer.stage(name, self.stage_index, self.stage_count)
        self.stage_index += 1

    def _stop_if_asked(self) -> None:
        """Cancellation outside training loops (sampling, export, quality, figures): between their pieces."""
        stop_if_asked(self.observer.should_stop)

    def _hooks(self, checkpoint_dir: Path, every: int) -> TrainHooks:
        return TrainHooks(checkpoint_dir=checkpoint_dir, checkpoint_every=every, **self.hooks_base)

    def synthetic_set(self, generator: str, seed: int) -> Split:
        """Train (or resume, or reuse) the generator of one seed and sample its synthetic set."""
        self._next_stage(f"generator {generator} seed {seed}")
        layout, meta = self.layout, {"generator": generator, "seed": seed}
        syn_path = layout.synthetic(generator, seed)
        if syn_path.is_file():
            syn = load_synthetic_npz(syn_path)
            self._quality(generator, syn, seed)
            return syn
        model_dir = layout.generator_model(generator, seed)
        if (model_dir / "config.json").is_file():
            model = generator_class(generator).load(model_dir, self.device)
        else:
            seed_everything(seed)
            model = build_generator(
                generator,
                self.data.num_classes,
                self.data.channels,
                self.data.image_size,
                config=self.config.generator_settings.get(generator),
                profile=self.config.profile,
                device=self.device,
                seed=seed,
            )
            every = int(model.config.get("checkpoint_every") or 250)
            stats = model.fit(self.data.train, self._hooks(layout.generator_checkpoint(generator, seed), every))
            model.save(model_dir)
            write_json(layout.train_stats(generator, seed), stats)
            self.observer.artifact("generator", model_dir, meta)
        counts = synthetic_counts(self.data.train.counts(self.data.num_classes), self.config.sampled_ratio)
        self._stop_if_asked()
        syn = model.sample(counts, seed=seed, should_stop=self.observer.should_stop)
        self._stop_if_asked()
        self._export_genmix(generator, syn, seed)
        self._stop_if_asked()
        self._quality(generator, syn, seed)
        self._stop_if_asked()
        with atomic_path(syn_path) as tmp, open(tmp, "wb") as handle:
            save_synthetic_npz(syn, handle, self.data.class_names)
        self.observer.artifact("synthetic", syn_path, {**meta, "count": len(syn)})
        return syn

    def _mixed_uint8(self, syn: Split, seed: int, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``count`` GenMix images as uint8 (N, H, W, C) with their soft labels and λ (for figures)."""
        batch = build_mixer(self.data.train, syn, self.data.num_classes, self.genmix_config, seed).mix_export(count)
        images = batch.images.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        return images, batch.soft_labels.numpy(), batch.lam.numpy()

    def _quality(self, generator: str, syn: Split, seed: int) -> None:
        """KID, diversity and memorisation of one synthetic set (once; kept in ``quality.json``)."""
        path = self.layout.quality(generator, seed)
        if not path.is_file():
            quality = quality_report(self.data.train, self.data.test, syn, self.data.num_classes, seed=seed)
            write_json(path, _finite(quality))

    def _export_genmix(self, generator: str, syn: Split, seed: int) -> None:
        """A ready-to-train GenMix batch for the lab's own code, one per real training image (capped)."""
        count = min(len(self.data.train), EXPORT_MAX)
        mixer = build_mixer(self.data.train, syn, self.data.num_classes, self.genmix_config, seed + 7919)
        path = save_export(mixer.mix_export(count), self.layout.export(generator, seed), self.data.class_names)
        self.observer.artifact("genmix_export", path, {"generator": generator, "seed": seed, "count": count})

    # -- synthetic subsets and the confidence filter ---------------------------------------------
    def synthetic_for(self, planned: PlannedRun, synthetic: dict[tuple[str, int], Split]) -> Split:
        """The synthetic images one run trains with: the first images per class of its generator's set (sampled at
        the largest ratio any run needs, so a single ratio takes it whole), less those the filter drops from a
        filtered run's."""
        assert planned.generator is not None
        ratio = float((planned.genmix or {}).get("synthetic_ratio", self.fixed_ratio))
        key = (planned.generator, planned.seed, ratio, planned.filtered)
        if key not in self._subsets:
            raw = synthetic[(planned.generator, planned.seed)]
            wanted = synthetic_counts(self.data.train.counts(self.data.num_classes), ratio)
            confidence = self.filters.get((planned.generator, planned.seed)) if planned.filtered else None
            index, sampled, dropped = [], [], []
            for k, n in enumerate(wanted):
                rows = np.flatnonzero(raw.labels == k)[:n]
                if len(rows) < n:
                    raise ValueError(
                        f"the synthetic set of {planned.generator} seed {planned.seed} has {len(rows)} images of class "
                        f"{k}, ratio {ratio} needs {n}: it was sampled for other settings; use a fresh output folder"
                    )
                kept = rows
                if confidence is not None and self.config.filter_tau is not None:
                    kept = rows[confidence[rows] >= self.config.filter_tau]
                    if len(kept) == 0 and len(rows):  # never empty a class: keep its most confident image
                        kept = rows[[int(np.argmax(confidence[rows]))]]
                index.append(kept)
                sampled.append(len(rows))
                dropped.append(len(rows) - len(kept))
            chosen = np.sort(np.concatenate(index))
            self._subsets[key] = raw if len(chosen) == len(raw) else raw.take(chosen)
            if planned.filtered:
                self.filter_counts[key[:3]] = {"sampled_per_class": sampled, "dropped_per_class": dropped}
        return self._subsets[key]

    def filter_stage(self, seed: int, synthetic: dict[tuple[str, int], Split]) -> None:
        """Score each generator's synthetic images of ``seed`` with that seed's baseline classifier (real data only,
        classifier replicate 0): the probability it gives each image's intended class, kept in ``filter.json``."""
        self._next_stage(f"filter seed {seed}")
        todo = [g for g in self.generators if not self.layout.synthetic_filter(g, seed).is_file()]
        if todo:
            baseline = PlannedRun("baseline", None, seed, 0, classifier_seed(seed, 0), None)
            model = self._fit(baseline, None)[0].model  # resumes from the baseline run's checkpoint when it has one
            for generator in todo:
                self._stop_if_asked()
                syn = synthetic[(generator, seed)]
                probs = predict(model, syn, self.device)
                confidence = probs[np.arange(len(syn)), syn.labels]
                write_json(
                    self.layout.synthetic_filter(generator, seed),
                    {"tau": self.config.filter_tau, "baseline_run_id": run_id("baseline", None, seed),
                     "confidence": [round(float(c), 5) for c in confidence]},
                )  # fmt: skip
        self._load_filters(seed)

    # -- classifiers ------------------------------------------------------------------------------
    def _run_id(self, planned: PlannedRun) -> str:
        return planned_run_id(self.config, planned)

    def _fit(self, planned: PlannedRun, syn: Split | None) -> tuple[Any, Any]:
        """Train one classifier (resuming from its checkpoint); returns the training result and the arm."""
        rid = self._run_id(planned)
        seed = planned.classifier_seed
        seed_everything(seed)
        cfg = self.classifier_config
        model = build_classifier(
            cfg.name,
            self.data.channels,
            self.data.num_classes,
            self.data.image_size,
            weights=cfg.weights,
            pretrained=cfg.pretrained,
            input_size=cfg.input_size,
            allow_download=cfg.allow_download,
        )
        genmix = self._genmix_config(planned.genmix) if planned.arm == "genmix" and planned.genmix else None
        settings = ArmSettings(mixup_alpha=self.config.mixup_alpha, genmix=genmix or self.genmix_config)
        arm_obj = build_arm(planned.arm, self.data.train, self.data.num_classes, self.device, seed, syn, settings)
        hooks = self._hooks(self.layout.run_checkpoint(rid), 1)
        result = train_classifier(model, arm_obj, self.data.val, self.data.class_names, cfg, self.device, hooks)
        return result, arm_obj

    def classifier_run(self, planned: PlannedRun, syn: Split | None) -> dict[str, Any]:
        """Train and evaluate one classifier (or read back its finished record).

        The record keeps the test predictions per image (``test_predictions``, with ``test_labels``) for the
        verdicts' paired bootstrap, and the validation macro F1 of the restored best epoch (``val_macro_f1``),
        which is all that choosing among GenMix settings reads.
        """
        rid = self._run_id(planned)
        self._next_stage(f"classifier {rid}")
        record_path = self.layout.run_record(rid)
        if record_path.is_file():  # its role in this study's grid is this plan's, whatever the earlier run's was
            return {**read_json(record_path), **self._grid_role(planned)}
        result, arm_obj = self._fit(planned, syn)
        metrics = evaluate(result.model, self.data.test, self.data.class_names, self.device)
        predictions = predict(result.model, self.data.test, self.device).argmax(axis=1)
        best = next((row for row in result.history if row.get("epoch") == result.best_epoch), None)
        record = {
            "run_id": rid,
            "arm": planned.arm,
            "generator": planned.generator,
            "seed": planned.seed,
            "replicate": planned.replicate,
            "classifier_seed": planned.classifier_seed,
            "metrics": metrics,
            "val_macro_f1": best.get("val_macro_f1") if best else None,
            "best_epoch": result.best_epoch,
            "epochs_trained": result.epochs_trained,
            "stopped_early": result.stopped_early,
            "history": result.history,
            "train_size": len(arm_obj),
            "test_predictions": [int(p) for p in predictions],
            "test_labels": [int(y) for y in self.data.test.labels],
        }
        record.update(self._grid_role(planned))
        if syn is not None:
            record["synthetic_per_class"] = syn.counts(self.data.num_classes)
        if self.config.figures and planned.replicate == 0 and planned.fixed and not planned.filtered:
            self.run_figures(rid, record, result.model, syn, planned.seed)
        write_json(record_path, record)
        self.observer.run_finished(record)
        return record

    @staticmethod
    def _grid_role(planned: PlannedRun) -> dict[str, Any]:
        """A GenMix run's settings and its place in the grid (the fixed arm, a candidate of the tuned arm): from the
        plan, so a folder first run with fixed settings and rerun with a grid counts its fixed run as a candidate."""
        if planned.genmix is None:
            return {}
        role = {"genmix_settings": dict(planned.genmix), "fixed": planned.fixed, "candidate": planned.candidate}
        return {**role, "variant": FILTERED} if planned.filtered else role

    # -- figures ----------------------------------------------------------------------------------
    def run_figures(
        self, rid: str, record: dict[str, Any], model: torch.nn.Module, syn: Split | None, seed: int
    ) -> None:
        fig_dir = self.layout.figures
        names = self.data.class_names
        paths = [
            figures.confusion_matrix_plot(
                record["metrics"]["confusion_matrix"], names, fig_dir / f"confusion-{rid}.png", title=rid
            ),
            figures.learning_curves(record["history"], fig_dir / f"curves-{rid}.png", title=rid),
        ]
        if record["arm"] == "genmix" and syn is not None and seed == self.config.seeds[0]:
            self._stop_if_asked()
            paths.append(self.tsne_figure(rid, model, syn, seed, fig_dir))
        for path in paths:
            self.observer.artifact("figure", path, {"run_id": rid})

    def tsne_figure(self, rid: str, model: torch.nn.Module, syn: Split, seed: int, fig_dir: Path) -> Path:
        """The paper's Fig. 4: features of real, synthetic and GenMix training images from the GenMix classifier."""
        rng = np.random.default_rng(seed)
        train = self.data.train
        per_kind = 300
        real_idx = rng.choice(len(train), min(per_kind, len(train)), replace=False)
        syn_idx = rng.choice(len(syn), min(per_kind, len(syn)), replace=False)
        mixed_u8, soft, _ = self._mixed_uint8(syn, seed + 104729, min(per_kind, len(train)))
        images = np.concatenate([train.images[real_idx], syn.images[syn_idx], mixed_u8])
        labels = np.concatenate([train.labels[real_idx], syn.labels[syn_idx], soft.argmax(1)])
        kinds = ["real"] * len(real_idx) + ["synthetic"] * len(syn_idx) + ["genmix"] * len(mixed_u8)
        features = extract_features(model, images, self.device)
        return figures.tsne_plot(features, labels, kinds, self.data.class_names, fig_dir / f"tsne-{rid}.png", seed=seed)

    def sample_figures(self, synthetic: dict[tuple[str, int], Split]) -> None:
        """The paper's Fig. 3 for each generator (first seed): real, synthetic and GenMix images per class."""
        seed = self.config.seeds[0]
        for generator in self.generators:
            self._stop_if_asked()
            syn = synthetic[(generator, seed)]
            genmix = self._mixed_uint8(syn, seed + 15485863, min(len(self.data.train), 400))
            path = figures.sample_grid(
                self.data.train,
                syn,
                genmix,
                self.data.class_names,
                self.layout.figures / f"samples-{generator}.png",
            )
            self.observer.artifact("figure", path, {"generator": generator})

    # -- descriptions -----------------------------------------------------------------------------
    def resolved_config(self) -> dict[str, Any]:
        return resolved_config(self.config, self.device)

    def dataset_info(self) -> dict[str, Any]:
        return {
            "name": self.data.name,
            "class_names": self.data.class_names,
            "channels": self.data.channels,
            "image_size": list(self.data.image_size),
            "counts": self.data.counts(),
            "decode": self.data.decode,
        }

    def generator_info(self, generator: str, seed: int) -> dict[str, Any]:
        layout = self.layout
        info: dict[str, Any] = {"generator": generator, "seed": seed}
        if layout.train_stats(generator, seed).is_file():
            info["train_stats"] = read_json(layout.train_stats(generator, seed))
        if layout.quality(generator, seed).is_file():
            info["quality"] = read_json(layout.quality(generator, seed))
        model_config = layout.generator_model(generator, seed) / "config.json"
        if model_config.is_file():
            info["model_config"] = json.loads(model_config.read_text())
        info["synthetic_per_class"] = synthetic_counts(
            self.data.train.counts(self.data.num_classes), self.config.sampled_ratio
        )
        counts = self.filter_counts.get((generator, seed, self.fixed_ratio))
        if counts is not None and self.filtering:  # without a filter nothing was dropped: no table of zeros
            info["filter"] = {"tau": self.config.filter_tau, "ratio": self.fixed_ratio, **counts,
                              "by_ratio": [{"ratio": r, **c} for (g, s, r), c in self.filter_counts.items()
                                           if (g, s) == (generator, seed)]}  # fmt: skip
        return info
