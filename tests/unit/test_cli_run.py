"""`genmix run` and `genmix mix` end to end on a slice of real BreastMNIST (tiny settings, real models)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from cli.main import main
from models.datasets import ImageSet, save_npz, slice_imageset

TINY_DCGAN = json.dumps(
    {
        "dcgan": {
            "iterations": 30,
            "batch_size": 16,
            "ngf": 8,
            "ndf": 8,
            "z_dim": 16,
            "embed_dim": 8,
            "log_every": 10,
        }
    }
)


@pytest.fixture(scope="module")
def breast_slice(breast: ImageSet, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "breast_slice.npz"
    save_npz(slice_imageset(breast, per_split_max=60, seed=0), path)
    return path


@pytest.fixture(scope="module")
def run_dir(breast_slice: Path, tmp_path_factory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("run") / "out"
    args = [
        "run",
        "--dataset",
        str(breast_slice),
        "--generator",
        "dcgan",
        "--seeds",
        "0,1",
        "--epochs",
        "2",
        "--generator-config",
        TINY_DCGAN,
        "--out",
        str(out),
    ]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_run_writes_every_arm_and_seed_with_all_metrics(run_dir) -> None:
    out, output = run_dir
    results = json.loads((out / "results.json").read_text())
    ids = sorted(r["run_id"] for r in results["records"])
    expected = sorted(f"{arm}-seed{s}" for arm in ("baseline", "mixup", "augmix") for s in (0, 1))
    expected += sorted(f"{arm}-dcgan-seed{s}" for arm in ("generative", "genmix") for s in (0, 1))
    assert ids == sorted(expected)
    for record in results["records"]:
        metrics = record["metrics"]
        assert 0.0 <= metrics["accuracy"] <= 1.0 and 0.0 <= metrics["macro_f1"] <= 1.0
        assert [p["class"] for p in metrics["per_class"]] == results["dataset"]["class_names"]
        assert sum(map(sum, metrics["confusion_matrix"])) == 60
    assert results["config"]["alpha"] == 0.3 and "torch" in results["versions"]
    labels = [row["label"] for row in results["summary"]]
    assert labels == ["Baseline (Real)", "MixUp (Real)", "AugMix (Real)", "DCGAN (50%)", "GenMix (DCGAN)"]
    for label in labels:
        assert label in output
    # what MixUp and AugMix do against the baseline, two seeds paired: a line each, as report.md's table says
    from models.report import reference_comparisons

    lines = [c["line"] for c in reference_comparisons(results["records"])]
    assert len(lines) == 4 and all(line in output for line in lines)
    assert "MixUp (Real) | macro F1 |" in (out / "report.md").read_text()


def test_run_writes_synthetic_set_export_and_figures(run_dir) -> None:
    out, _ = run_dir
    syn = np.load(out / "seed0" / "dcgan" / "synthetic.npz")
    train_counts = json.loads((out / "results.json").read_text())["dataset"]["counts"]["train"]
    assert syn["images"].dtype == np.uint8 and syn["images"].shape[1:] == (28, 28)
    assert np.bincount(syn["labels"]).tolist() == [max(1, round(0.5 * n)) for n in train_counts]
    export = np.load(out / "seed0" / "dcgan" / "genmix_export.npz")
    assert export["images"].shape == (60, 1, 28, 28) and np.allclose(export["soft_labels"].sum(1), 1.0)
    results = json.loads((out / "results.json").read_text())
    quality = results["generators"]["dcgan-seed0"]["quality"]
    assert quality["kid_mean"] is not None and 0.0 <= quality["memorised_share"] <= 1.0
    assert results["quality"][0]["label"] == "DCGAN" and results["quality"][0]["kid_mean"]["n"] == 2
    # no filter asked for: no filter record and no table of zero drops in the report
    assert "filter" not in results["generators"]["dcgan-seed0"]
    assert "dropped / sampled" not in (out / "report.md").read_text()
    figures = {p.name for p in (out / "figures").glob("*.png")}
    assert "samples-dcgan.png" in figures and "tsne-genmix-dcgan-seed0.png" in figures
    assert "confusion-baseline-seed0.png" in figures and "curves-genmix-dcgan-seed1.png" in figures


def _rerun_args(dataset: Path, out: Path, *extra: str) -> list[str]:
    """The run of ``run_dir`` again (its generator already trained), without figures, with ``extra`` flags."""
    return ["run", "--dataset", str(dataset), "--seeds", "0,1", "--no-figures", "--generator-config", TINY_DCGAN,
            "--out", str(out), *extra]  # fmt: skip


def test_rerun_with_the_same_directory_reuses_finished_work(run_dir, breast_slice) -> None:
    out, _ = run_dir
    before = (out / "runs" / "genmix-dcgan-seed1.json").read_text()
    stamp = (out / "seed0" / "dcgan" / "synthetic.npz").stat().st_mtime_ns
    result = CliRunner().invoke(main, _rerun_args(breast_slice, out, "--epochs", "2"), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert (out / "runs" / "genmix-dcgan-seed1.json").read_text() == before
    assert (out / "seed0" / "dcgan" / "synthetic.npz").stat().st_mtime_ns == stamp


def test_rerun_with_other_settings_is_refused_before_anything_is_written(run_dir, breast_slice) -> None:
    """More epochs, another GenMix β or MixUp α asked of a finished folder: its records would be shown as the new
    design's; the CLI says which settings differ and leaves the folder as it was."""
    out, _ = run_dir
    snapshot = {path: path.stat().st_mtime_ns for path in out.rglob("*")}
    refused = {
        "classifier_resolved": ["--epochs", "3"],
        "beta": ["--epochs", "2", "--beta", "0.5"],
        "mixup_alpha": ["--epochs", "2", "--mixup-alpha", "1.0"],
    }
    for named, extra in refused.items():
        result = CliRunner().invoke(main, _rerun_args(breast_slice, out, *extra))
        assert result.exit_code == 1, result.output
        assert "holds runs made with other settings" in result.output and named in result.output, result.output
    assert {path: path.stat().st_mtime_ns for path in out.rglob("*")} == snapshot
    before = (out / "runs" / "genmix-dcgan-seed1.json").read_text()
    offline = _rerun_args(breast_slice, out, "--epochs", "2", "--classifier-config", '{"allow_download": false}')
    result = CliRunner().invoke(main, offline)  # how weights may be fetched is not what was trained: reused
    assert result.exit_code == 0, result.output
    assert (out / "runs" / "genmix-dcgan-seed1.json").read_text() == before


def _run_args(dataset: Path, out: Path, *extra: str) -> list[str]:
    return ["run", "--dataset", str(dataset), "--generator", "dcgan", "--seeds", "0,1", "--epochs", "2",
            "--generator-config", TINY_DCGAN, "--out", str(out), *extra]  # fmt: skip


def test_workers_run_the_units_side_by_side_with_a_one_process_runs_results(
    run_dir, breast_slice, tmp_path, monkeypatch
) -> None:
    """``--workers 2``: every unit in its own process, two at a time; each unit seeds itself, so with the same
    torch threads the records, synthetic sets and verdicts are those of the one-process run of the same command."""
    import torch

    from core.settings import get_settings

    sequential, _ = run_dir
    out = tmp_path / "parallel"
    monkeypatch.setenv("GENMIX_TORCH_THREADS", str(torch.get_num_threads()))  # the fixture's run: torch's default
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, _run_args(breast_slice, out, "--workers", "2", "--no-figures"))
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    assert "units" in result.stderr and "GenMix (DCGAN)" in result.output
    one = json.loads((sequential / "results.json").read_text())
    two = json.loads((out / "results.json").read_text())
    by_id = {r["run_id"]: r for r in one["records"]}
    assert sorted(by_id) == sorted(r["run_id"] for r in two["records"])
    for record in two["records"]:
        twin = by_id[record["run_id"]]
        assert record["metrics"] == twin["metrics"] and record["history"] == twin["history"], record["run_id"]
    assert two["verdicts"] == one["verdicts"] and two["summary"] == one["summary"]
    for seed in (0, 1):
        a = np.load(sequential / f"seed{seed}" / "dcgan" / "synthetic.npz")
        b = np.load(out / f"seed{seed}" / "dcgan" / "synthetic.npz")
        assert np.array_equal(a["images"], b["images"]) and np.array_equal(a["labels"], b["labels"])


def test_a_failing_unit_stops_the_workers_with_its_name_and_error(breast_slice, tmp_path) -> None:
    import multiprocessing

    out = tmp_path / "broken"
    out.mkdir()
    (out / "seed0").write_text("a file where the seed's folder goes")  # the seed-0 generator cannot write
    result = CliRunner().invoke(main, _run_args(breast_slice, out, "--workers", "2", "--no-figures"))
    assert result.exit_code == 1
    assert "unit generator:dcgan:0 failed" in result.output and "Error" in result.output
    assert not (out / "results.json").exists()
    assert multiprocessing.active_children() == []  # no unit process left behind


def _one_seed_run(run_dir: Path, dataset: Path, seed: int, out: Path) -> Path:
    """The joint run's seed as a run of its own: its folders copied, then the same command with ``--seeds S``
    (nothing to train: it only assembles), as a second machine's run of that seed would leave it."""
    shutil.copytree(run_dir / f"seed{seed}", out / f"seed{seed}")
    (out / "runs").mkdir()
    for record in (run_dir / "runs").glob(f"*-seed{seed}.json"):
        shutil.copy(record, out / "runs" / record.name)
    args = _run_args(dataset, out, "--no-figures")
    args[args.index("--seeds") + 1] = str(seed)
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return out


def test_merge_of_one_seed_runs_gives_the_joint_runs_results(run_dir, breast_slice, tmp_path) -> None:
    """Seeds run apart (other machines, other sessions) and merged: the records, the table, the verdicts, the
    selections and the quality rows of one run over both seeds; report.md is written and the CLI prints the table."""
    joint_dir, _ = run_dir
    parts = [_one_seed_run(joint_dir, breast_slice, seed, tmp_path / f"part{seed}") for seed in (0, 1)]
    result = CliRunner().invoke(main, ["merge", str(parts[1]), str(parts[0] / "results.json"), "--out",
                                       str(tmp_path / "merged")])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "GenMix (DCGAN)" in result.output and "seeds [0, 1]" in result.stderr
    joint = json.loads((joint_dir / "results.json").read_text())
    merged = json.loads((tmp_path / "merged" / "results.json").read_text())
    assert [r["run_id"] for r in merged["records"]] == [r["run_id"] for r in joint["records"]]
    assert merged["records"] == joint["records"]
    for key in ("summary", "verdicts", "selection", "quality", "dataset", "generators"):
        assert merged[key] == joint[key], key
    assert merged["config"]["seeds"] == [0, 1] and [p["seeds"] for p in merged["merged_from"]] == [[1], [0]]
    assert "GenMix (DCGAN)" in (tmp_path / "merged" / "report.md").read_text()


def test_merge_refuses_runs_of_different_studies_and_conflicting_records(run_dir, tmp_path) -> None:
    joint_dir, _ = run_dir
    joint = json.loads((joint_dir / "results.json").read_text())
    other = {**joint, "config": {**joint["config"], "alpha": 1.0}}
    (tmp_path / "other.json").write_text(json.dumps(other))
    result = CliRunner().invoke(main, ["merge", str(joint_dir), str(tmp_path / "other.json"), "--out",
                                       str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 1 and "not one study: they differ in alpha" in result.output
    resolved = {**joint["config"]["classifier_resolved"], "allow_download": False}  # another machine's network
    (tmp_path / "offline.json").write_text(
        json.dumps({**joint, "config": {**joint["config"], "classifier_resolved": resolved}})
    )
    result = CliRunner().invoke(main, ["merge", str(joint_dir), str(tmp_path / "offline.json"), "--out",
                                       str(tmp_path / "fine")])  # fmt: skip
    assert result.exit_code == 0, result.output
    changed = json.loads(json.dumps(joint))
    changed["records"][0]["metrics"]["accuracy"] = 0.0
    (tmp_path / "changed.json").write_text(json.dumps(changed))
    result = CliRunner().invoke(main, ["merge", str(joint_dir), str(tmp_path / "changed.json"), "--out",
                                       str(tmp_path / "out")])  # fmt: skip
    assert result.exit_code == 1 and f"run {joint['records'][0]['run_id']} differs between" in result.output
    (tmp_path / "broken.json").write_text("{")
    result = CliRunner().invoke(main, ["merge", str(tmp_path / "broken.json"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 1 and "not a readable results.json" in result.output
    assert not (tmp_path / "out").exists()


def test_mix_exports_a_traceable_genmix_batch(run_dir, breast_slice, tmp_path) -> None:
    out, _ = run_dir
    target = tmp_path / "mixed.npz"
    args = [
        "mix",
        "--real",
        str(breast_slice),
        "--synthetic",
        str(out / "seed0" / "dcgan" / "synthetic.npz"),
        "--alpha",
        "0.3",
        "--count",
        "50",
        "--seed",
        "4",
        "--out",
        str(target),
    ]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    batch = np.load(target)
    real = np.load(breast_slice)["train_images"].astype(np.float32)
    syn = np.load(out / "seed0" / "dcgan" / "synthetic.npz")["images"].astype(np.float32)
    assert batch["images"].shape == (50, 1, 28, 28) and batch["images"].max() > 1.0  # 0–255 scale kept
    i = 7
    partner = (syn if batch["partner_pool"][i] else real)[batch["partner_index"][i]]
    lam = batch["lam"][i]
    expected = lam * partner + (1 - lam) * real[batch["real_index"][i]]
    assert np.allclose(batch["images"][i, 0], expected, atol=1e-3)


def test_bad_requests_fail_with_clear_messages(breast_slice, tmp_path) -> None:
    result = CliRunner().invoke(
        main, ["run", "--dataset", str(breast_slice), "--generator", "gan9000", "--out", str(tmp_path / "x")]
    )
    assert result.exit_code != 0 and "generators.0" in result.output and "'gan9000'" in result.output
    bad = tmp_path / "bad.npz"
    np.savez(bad, train_images=np.zeros((2, 8, 8), np.uint8))
    result = CliRunner().invoke(main, ["run", "--dataset", str(bad), "--out", str(tmp_path / "y")])
    assert result.exit_code != 0 and "bad.npz" in result.output
