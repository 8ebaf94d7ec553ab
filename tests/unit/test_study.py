"""A whole study on a BreastMNIST slice with the issue's options at tiny settings: k classifier seeds per generator
seed, list-valued GenMix settings chosen on validation, the synthetic filter, and the verdicts in results.json,
report.md and the CLI's output. A second run on a corrupted test split proves the choice never sees it.

The generator's stage is given its output in advance (a synthetic set made of real training images, half of them
under the other class's label, and an empty quality report), as a rerun finds it: generator training and quality
are tested elsewhere (test_cli_run), and these tests are about what comes after."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import main
from models.datasets import ImageSet, Split, load_dataset, save_npz, save_synthetic_npz, slice_imageset
from models.experiment import run_experiment, synthetic_counts
from models.spec import ExperimentSpec, classifier_seed
from models.studies import MergeError, merge_results

TINY_DCGAN = {"dcgan": {"iterations": 30, "batch_size": 16, "ngf": 8, "ndf": 8, "z_dim": 16, "embed_dim": 8,
                        "log_every": 10}}  # fmt: skip
SPEC = {
    "generators": ["dcgan"],
    "arms": ["baseline", "genmix"],
    "alpha": [0.1, 1.0],  # the fixed arm's α = 0.3 is not in the grid: it runs next to it
    "classifier_seeds_per_generator": 2,
    "filter_tau": 0.5,
    "classifier_settings": {"epochs": 2},
    "generator_settings": TINY_DCGAN,
    "seeds": [0],
    "figures": False,
}


@pytest.fixture(scope="module")
def tiny(breast: ImageSet) -> ImageSet:
    return slice_imageset(breast, per_split_max=60, seed=0)


def _seed_generator_stage(tiny: ImageSet, out: Path) -> None:
    """seed0/dcgan/synthetic.npz and quality.json, as a finished generator stage leaves them."""
    folder = out / "seed0" / "dcgan"
    folder.mkdir(parents=True)
    train = tiny.train
    index, labels = [], []
    for k, n in enumerate(synthetic_counts(train.counts(2), 0.5)):
        own, other = np.flatnonzero(train.labels == k), np.flatnonzero(train.labels != k)
        pick = np.arange(n)  # every other image shows the other class: the filter's prey
        index.append(np.where(pick % 2 == 1, other[pick % len(other)], own[pick % len(own)]))
        labels.append(np.full(n, k))
    split = Split(train.images[np.concatenate(index)], np.concatenate(labels).astype(np.int64))
    with open(folder / "synthetic.npz", "wb") as handle:
        save_synthetic_npz(split, handle, tiny.class_names)
    (folder / "quality.json").write_text("{}")


@pytest.fixture(scope="module")
def study(tiny: ImageSet, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """The study through ``genmix run``, with the flags a lab types."""
    data = tmp_path_factory.mktemp("data") / "slice.npz"
    save_npz(tiny, data)
    out = tmp_path_factory.mktemp("study") / "out"
    _seed_generator_stage(tiny, out)
    args = ["run", "--dataset", str(data), "--generator", "dcgan", "--arms", "baseline,genmix",
            "--alpha", "0.1,1", "--classifier-seeds", "2", "--filter-tau", "0.5", "--seeds", "0", "--epochs", "2",
            "--generator-config", json.dumps(TINY_DCGAN), "--no-figures", "--out", str(out)]  # fmt: skip
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out, result.output, data


def _results(out: Path) -> dict:
    return json.loads((out / "results.json").read_text())


def test_k_classifier_seeds_per_generator_seed_and_the_grid_have_their_run_ids(study) -> None:
    out, *_ = study
    results = _results(out)
    assert results["config"] == results["config"] | {k: v for k, v in SPEC.items() if k not in (
        "classifier_settings", "generator_settings")}  # fmt: skip
    ids = [r["run_id"] for r in results["records"]]
    per_replicate = ["baseline-seed0", "genmix-dcgan-seed0", "genmix-dcgan-seed0-f0p5", "genmix-dcgan-seed0-a0p1",
                     "genmix-dcgan-seed0-a1"]  # fmt: skip
    assert ids == per_replicate + [rid.replace("seed0", "seed0-c1") for rid in per_replicate]
    assert len(list((out / "seed0").iterdir())) == 1  # one generator training for both classifier seeds
    seeds = {(r["replicate"], r["classifier_seed"]) for r in results["records"]}
    assert seeds == {(0, 0), (1, classifier_seed(0, 1))}
    for record in results["records"]:
        assert len(record["test_predictions"]) == len(record["test_labels"]) == 60
        assert record["val_macro_f1"] == record["history"][record["best_epoch"] - 1]["val_macro_f1"]
    labels = [row["label"] for row in results["summary"]]
    assert labels == ["Baseline (Real)", "GenMix (DCGAN)", "GenMix (DCGAN), filtered", "GenMix (DCGAN), tuned on val"]
    assert all(row["seeds"] == [0, 0] for row in results["summary"])


def test_the_verdicts_are_in_results_report_and_cli_output(study) -> None:
    out, output, _ = study
    verdicts = _results(out)["verdicts"]
    assert [(c["target"], c["reference"]) for c in verdicts["comparisons"]] == [
        ("GenMix (DCGAN)", "Baseline (Real)"), ("GenMix (DCGAN), filtered", "Baseline (Real)"),
        ("GenMix (DCGAN), filtered", "GenMix (DCGAN)"), ("GenMix (DCGAN), tuned on val", "Baseline (Real)"),
    ]  # fmt: skip
    for c in verdicts["comparisons"]:
        assert c["pairs"] == 2 and c["ci_low"] <= c["mean_diff"] <= c["ci_high"] and c["p_holm"] >= c["p_value"]
        assert "one generator seed with 2 classifier seeds" in c["spread"]
        assert c["verdict"] == "too few seeds" and "2 classifier seeds, too few for a verdict" in c["line"]
    assert len(verdicts["plans"]) == 4  # two seed units cannot decide: what would, per comparison
    for plan in verdicts["plans"]:
        assert f"plan: {plan}" in output and f"- {plan}" in (out / "report.md").read_text()
    notice = "note: 1 seed × 2 classifier seeds: 2 seed units, too few for a verdict on GenMix"
    assert notice in output and output.index(notice) < output.index(verdicts["lines"][0])  # said before training
    assert "note: filter τ = 0.5: 2 of the 10 classifiers are filtered twins of synthetic arms" in output
    report = (out / "report.md").read_text()
    assert report.index("**Verdicts**") < report.index("| Method |")  # the verdicts come first
    for line in verdicts["lines"]:
        assert f"- {line}" in report and line in output
        assert output.index(line) < output.index("Baseline (Real)  ")  # above the table
    assert "chosen per seed on validation macro F1" in report and "dropped / sampled per class" in report
    assert "| GenMix (DCGAN), filtered | GenMix (DCGAN) | " in report  # the per-seed t-tests: the same comparisons


def test_filter_drops_what_the_baseline_doubts_and_counts_it(study, tiny) -> None:
    out, *_ = study
    results = _results(out)
    stored = json.loads((out / "seed0" / "dcgan" / "filter.json").read_text())
    syn = np.load(out / "seed0" / "dcgan" / "synthetic.npz")
    info = results["generators"]["dcgan-seed0"]["filter"]
    train_counts = np.bincount(tiny.train.labels, minlength=2)
    assert info["sampled_per_class"] == [max(1, round(0.5 * n)) for n in train_counts] == np.bincount(
        syn["labels"], minlength=2).tolist()  # fmt: skip
    confidence = np.asarray(stored["confidence"])
    for k in range(2):
        below = int((confidence[syn["labels"] == k] < 0.5).sum())
        sampled = info["sampled_per_class"][k]
        assert info["dropped_per_class"][k] == (below if below < sampled else sampled - 1)  # a class keeps one
    kept = [s - d for s, d in zip(info["sampled_per_class"], info["dropped_per_class"], strict=True)]
    assert sum(info["dropped_per_class"]) > 0
    for record in results["records"]:  # the filtered twin trains on what was kept, every other GenMix run on all
        if record["arm"] == "genmix":
            filtered = record["run_id"].endswith("-f0p5")
            assert record.get("variant") == ("filtered" if filtered else None)
            assert record["synthetic_per_class"] == (kept if filtered else info["sampled_per_class"])


def test_the_choice_never_sees_the_test_split(study, tiny, tmp_path) -> None:
    """The same study (its first classifier seed) with the test images replaced by noise and the labels scrambled
    chooses the same settings with the same validation scores, and filters the same images; only test numbers
    change."""
    out, _, data = study
    rng = np.random.default_rng(0)
    loaded = load_dataset(data)  # read as `genmix run` read it (the same arrays, down to their memory layout)
    test = loaded.test
    noise = Split(rng.integers(0, 256, test.images.shape, dtype=np.uint8), rng.permutation(1 - test.labels))
    corrupted = ImageSet(loaded.name, list(loaded.class_names), {**loaded.splits, "test": noise})
    other = tmp_path / "out"
    _seed_generator_stage(tiny, other)
    again = run_experiment(corrupted, ExperimentSpec(**{**SPEC, "classifier_seeds_per_generator": 1}), other)
    first = _results(out)
    assert again["selection"] == first["selection"][:1] and first["selection"][0]["replicate"] == 0
    assert [r["val_macro_f1"] for r in again["records"]] == [r["val_macro_f1"] for r in first["records"][:5]]
    assert json.loads((other / "seed0/dcgan/filter.json").read_text()) == json.loads(
        (out / "seed0/dcgan/filter.json").read_text())  # fmt: skip
    assert [r["test_labels"] for r in again["records"]] != [r["test_labels"] for r in first["records"]]


def test_a_grid_added_to_a_finished_folder_counts_its_fixed_run_as_a_candidate(tiny, tmp_path) -> None:
    """Run with the paper's α first, then with α ∈ {0.3, 1.0} in the same folder: the fixed run is reused (not
    retrained) and is one of the tuned arm's candidates, as in a folder that had the grid from the start."""
    out = tmp_path / "out"
    _seed_generator_stage(tiny, out)
    plain = {**SPEC, "alpha": 0.3, "classifier_seeds_per_generator": 1, "filter_tau": None}
    first = run_experiment(tiny, ExperimentSpec(**plain), out)
    fixed = next(r for r in first["records"] if r["arm"] == "genmix")
    assert fixed["run_id"] == "genmix-dcgan-seed0" and fixed["candidate"] is False
    again = run_experiment(tiny, ExperimentSpec(**{**plain, "alpha": [0.3, 1.0]}), out)
    (selection,) = again["selection"]
    assert [c["run_id"] for c in selection["candidates"]] == ["genmix-dcgan-seed0", "genmix-dcgan-seed0-a1"]
    reused = next(r for r in again["records"] if r["run_id"] == "genmix-dcgan-seed0")
    assert reused["candidate"] is True and reused["history"] == fixed["history"]  # read back, not retrained


def test_a_filter_added_to_a_finished_folder_trains_only_the_filtered_twin(tiny, tmp_path) -> None:
    """Run without a filter, then with τ = 0.5 in the same folder: the baseline and GenMix runs are read back, not
    retrained; the filtered twin joins them with its own id, row and comparisons (against the unfiltered arm too)."""
    out = tmp_path / "out"
    _seed_generator_stage(tiny, out)
    plain = {**SPEC, "alpha": 0.3, "classifier_seeds_per_generator": 1, "filter_tau": None}
    first = run_experiment(tiny, ExperimentSpec(**plain), out)
    assert [r["run_id"] for r in first["records"]] == ["baseline-seed0", "genmix-dcgan-seed0"]
    written = {path.name: path.read_text() for path in (out / "runs").glob("*.json")}
    again = run_experiment(tiny, ExperimentSpec(**{**plain, "filter_tau": 0.5}), out)
    ids = ["baseline-seed0", "genmix-dcgan-seed0", "genmix-dcgan-seed0-f0p5"]
    assert [r["run_id"] for r in again["records"]] == ids
    assert all((out / "runs" / name).read_text() == text for name, text in written.items())  # read back
    assert [row["label"] for row in again["summary"]] == ["Baseline (Real)", "GenMix (DCGAN)",
                                                          "GenMix (DCGAN), filtered"]  # fmt: skip
    pairs = [(c["target"], c["reference"]) for c in again["verdicts"]["comparisons"]]
    assert pairs == [("GenMix (DCGAN)", "Baseline (Real)"), ("GenMix (DCGAN), filtered", "Baseline (Real)"),
                     ("GenMix (DCGAN), filtered", "GenMix (DCGAN)")]  # fmt: skip
    info = again["generators"]["dcgan-seed0"]["filter"]
    kept = [s - d for s, d in zip(info["sampled_per_class"], info["dropped_per_class"], strict=True)]
    assert again["records"][2]["synthetic_per_class"] == kept != again["records"][1]["synthetic_per_class"]


def test_a_filter_run_merges_with_the_references_run_into_the_joint_study(tiny, tmp_path) -> None:
    """References in one folder, the filtered GenMix in another (its generator, baseline and GenMix copied in):
    ``merge_results`` gives the records, table, verdicts and filter counts of one run with all of them."""
    plain = {**SPEC, "alpha": 0.3, "classifier_seeds_per_generator": 1, "filter_tau": None}
    refs, filtered, joint = tmp_path / "refs", tmp_path / "filtered", tmp_path / "joint"
    _seed_generator_stage(tiny, refs)
    first = run_experiment(tiny, ExperimentSpec(**{**plain, "arms": ["baseline", "mixup", "genmix"]}), refs)
    for folder in (filtered, joint):
        shutil.copytree(refs / "seed0", folder / "seed0")
        shutil.copytree(refs / "runs", folder / "runs", ignore=shutil.ignore_patterns("mixup-*"))
    second = run_experiment(tiny, ExperimentSpec(**{**plain, "filter_tau": 0.5}), filtered)
    shutil.copy(filtered / "runs" / "genmix-dcgan-seed0-f0p5.json", joint / "runs")
    shutil.copy(refs / "runs" / "mixup-seed0.json", joint / "runs")
    shutil.copy(filtered / "seed0" / "dcgan" / "filter.json", joint / "seed0" / "dcgan")
    whole = run_experiment(tiny, ExperimentSpec(**{**plain, "arms": ["baseline", "mixup", "genmix"],
                                                   "filter_tau": 0.5}), joint)  # fmt: skip
    merged = merge_results([("refs", first), ("filtered", second)])
    assert [r["run_id"] for r in merged["records"]] == [r["run_id"] for r in whole["records"]] == [
        "baseline-seed0", "mixup-seed0", "genmix-dcgan-seed0", "genmix-dcgan-seed0-f0p5"]  # fmt: skip
    for key in ("records", "summary", "verdicts", "generators"):
        assert merged[key] == whole[key], key
    assert merged["config"]["arms"] == ["baseline", "mixup", "genmix"] and merged["config"]["filter_tau"] == 0.5
    with pytest.raises(MergeError, match="different thresholds"):
        merge_results([("filtered", second), ("other", {**second, "config": {**second["config"], "filter_tau": 0.7}})])


GROWN = [
    {"seeds": [0, 1, 2]},
    {"arms": ["baseline", "genmix", "mixup", "generative"]},
    {"generators": ["dcgan", "stylegan"]},
    {"classifier_seeds_per_generator": 3},
    {"alpha": [0.3, 1.0]},
    {"filter_tau": 0.5},
    {"figures": False, "device": "cpu"},
    {"classifier": "smallcnn", "classifier_settings": {"epochs": 2, "batch_size": 32}},  # restates the profile's name
    {"generator_settings": {"dcgan": {"iterations": 40, "lr": 0.0002}}},  # restates the profile's lr
]
CHANGED = [
    ({"classifier_settings": {"epochs": 3}}, "classifier.epochs"),
    ({"generator_settings": {"dcgan": {"iterations": 50}}}, "generator_settings.dcgan.iterations"),
    ({"beta": 2.0}, "beta"),
    ({"synthetic_ratio": 1.0}, "synthetic_ratio"),
    ({"profile": "pretrained", "classifier_settings": {}, "generator_settings": {}}, "profile"),
]


def _stored(**changes: object) -> dict[str, object]:
    base = {"arms": ["baseline", "genmix"], "seeds": [0], "classifier_settings": {"epochs": 2},
            "generator_settings": {"dcgan": {"iterations": 40}}}  # fmt: skip
    return ExperimentSpec.model_validate({**base, **changes}).model_dump(mode="json")


@pytest.mark.parametrize(("changes", "refused"), [(c, None) for c in GROWN] + CHANGED)
def test_the_services_extension_rule_is_the_folder_guards(changes: dict[str, object], refused: str | None) -> None:
    """What ``POST /jobs`` with ``extends`` refuses at the door (specs only, no torch) is exactly what the worker's
    folder guard would refuse (resolved configurations): a design change, named; a study that grows passes both."""
    from models.experiment import resolved_config
    from models.studies import extension_conflicts, folder_conflicts

    found, asked = _stored(), _stored(**changes)
    door = extension_conflicts(found, asked)
    guard = folder_conflicts(*(resolved_config(ExperimentSpec.model_validate(s), "cpu") for s in (found, asked)))
    assert bool(door) == bool(guard), (door, guard)
    if refused is None:
        assert door == []
    else:
        assert any(line.startswith(f"{refused}: ") for line in door), door


def test_an_extension_copies_what_it_reuses_and_not_the_checkpoints_of_finished_units(tmp_path: Path) -> None:
    from models.layout import OutputLayout

    kept = [
        "config.json",
        "figures/confusion-baseline-seed0.png",
        "seed0/dcgan/synthetic.npz",
        "seed0/dcgan/model/config.json",
        "seed0/dcgan/quality.json",
        "seed0/dcgan/filter.json",
        "seed1/dcgan/checkpoint/ckpt-00000010.json",  # a generator still training: resumed by the extension
        "runs/baseline-seed0.json",
        "runs/baseline-seed0/checkpoint/ckpt-00000004.safetensors",  # the filter's
        "runs/genmix-dcgan-seed0.json",
        "runs/baseline-seed0-c1.json",
        "runs/mixup-seed1/checkpoint/ckpt-00000002.safetensors",
    ]  # fmt: skip  (a run still training)
    left = ["results.json", "report.md", "samples/real-4.png", "seed0/dcgan/checkpoint/ckpt-00002000.json",
            "runs/genmix-dcgan-seed0/checkpoint/ckpt-00000004.safetensors",
            "runs/baseline-seed0-c1/checkpoint/ckpt-00000004.safetensors"]  # fmt: skip
    for name in kept + left:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    layout = OutputLayout(tmp_path)
    assert [n for n in kept if not layout.reused_by_extension(Path(n))] == []
    assert [n for n in left if layout.reused_by_extension(Path(n))] == []


def test_a_job_stored_before_a_spec_field_existed_can_be_extended() -> None:
    """Its stored spec lacks the field; the field's default is what its runs were made with."""
    from models.studies import extension_conflicts

    older = {key: value for key, value in _stored().items() if key not in ("mix_prob", "class_balanced")}
    assert extension_conflicts(older, _stored(seeds=[0, 1])) == []
    refused = ["class_balanced: False in the job extended, True asked"]
    assert extension_conflicts(older, _stored(class_balanced=True)) == refused
