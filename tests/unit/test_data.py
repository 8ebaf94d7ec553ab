"""The dataset reader: real MedMNIST files, hand-built image folders, the carving rule for missing splits,
the usability rule, and every kind of bad input naming its file."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from models.datasets import (
    CARVE_PERCENT,
    CARVE_SEED,
    DatasetError,
    ImageSet,
    Split,
    carve_counts,
    carve_missing,
    load_dataset,
    load_image_folder,
    load_npz,
    load_synthetic_npz,
    save_npz,
    save_synthetic_npz,
    slice_imageset,
)
from models.medmnist import fetch_medmnist, medmnist_filename, medmnist_url
from models.tensors import one_hot, to_tensor, to_uint8

# ------------------------------------------------------------------------------------------ MedMNIST npz


def test_breastmnist_counts_match_the_published_split(breast: ImageSet) -> None:
    assert breast.counts() == {"train": [147, 399], "val": [21, 57], "test": [42, 114]}
    assert breast.class_names == ["malignant", "normal/benign"]  # MedMNIST's names for its own file
    assert breast.channels == 1 and breast.image_size == (28, 28)
    assert breast.train.images.dtype == np.uint8 and breast.train.labels.dtype == np.int64
    assert breast.name == "breastmnist"


def test_retinamnist_is_rgb_with_five_grades(data_dir: Path) -> None:
    retina = load_npz(data_dir / "retinamnist.npz")
    assert retina.channels == 3 and retina.image_size == (28, 28)
    assert retina.counts()["train"] == [486, 128, 206, 194, 66]
    assert retina.counts()["test"] == [174, 46, 92, 68, 20]


def test_breastmnist_64_loads_at_64(data_dir: Path) -> None:
    assert load_npz(data_dir / "breastmnist_64.npz").image_size == (64, 64)


def _medmnist_arrays(rng: np.random.Generator, rgb: bool = False) -> dict[str, np.ndarray]:
    shape = (6, 5, 5, 3) if rgb else (6, 5, 5)
    arrays = {}
    for split in ("train", "val", "test"):
        arrays[f"{split}_images"] = rng.integers(0, 256, shape, dtype=np.uint8)
        arrays[f"{split}_labels"] = np.array([[0], [1], [2], [0], [1], [2]], dtype=np.uint8)
    return arrays


def test_npz_round_trip_keeps_pixels_labels_and_class_names(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    for rgb in (False, True):
        arrays = _medmnist_arrays(rng, rgb)
        arrays["class_names"] = np.array(["cyst", "hemangioma", "metastasis"])
        np.savez(tmp_path / "in.npz", **arrays)
        loaded = load_npz(tmp_path / "in.npz")
        assert loaded.class_names == ["cyst", "hemangioma", "metastasis"]
        assert loaded.channels == (3 if rgb else 1)
        save_npz(loaded, tmp_path / "out.npz")
        with np.load(tmp_path / "out.npz") as saved:
            assert saved["train_images"].shape == arrays["train_images"].shape  # gray stored (N, H, W)
            assert saved["train_labels"].shape == (6, 1)
        again = load_npz(tmp_path / "out.npz")
        for split in ("train", "val", "test"):
            np.testing.assert_array_equal(again.splits[split].images, loaded.splits[split].images)
            np.testing.assert_array_equal(again.splits[split].labels, loaded.splits[split].labels)
        assert again.class_names == loaded.class_names


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a.pop("val_labels"), "missing arrays ['val_labels']"),
        (lambda a: a.update(train_images=a["train_images"].astype(np.float32) / 255), "must be uint8"),
        (
            lambda a: a.update(test_images=a["test_images"][..., None].repeat(2, -1)),
            "(N, H, W) or (N, H, W, 3)",
        ),
        (lambda a: a.update(val_labels=a["val_labels"][:4]), "4 labels but there are 6 images"),
        (lambda a: a.update(val_labels=-a["val_labels"].astype(np.int64)), "negative label"),
        (lambda a: a.update(train_labels=a["train_labels"].astype(np.float64)), "integer class indices"),
        (lambda a: a.update(train_labels=np.zeros((6, 2), np.int64)), "single-label"),
        (
            lambda a: a.update(train_labels=np.array([0, 0, 2, 0, 2, 2])),
            "empty class: no training image for class(es) ['1']",
        ),
        (lambda a: a.update(class_names=np.array(["a", "b"])), "out of range for 2 class_names"),
        (lambda a: a.update(class_names=np.array(["a", "b", "c", "d"])), "4 class names for 3 classes"),
        (lambda a: a.update(class_names=np.array(["a", "b", "a"])), "class names must be unique"),
        (lambda a: a.update(test_labels=np.array([0, 1, 0, 1, 0, 1])), "class(es) ['2'] have no images in the test"),
        (lambda a: [a.update({f"{s}_labels": np.zeros(6, np.int64)}) for s in ("train", "val", "test")], "2 classes"),
        (lambda a: a.update(val_images=a["val_images"][:, :4]), "different image shapes"),
        (lambda a: a.update(test_images=a["test_images"][:0], test_labels=a["test_labels"][:0]), "no images"),
    ],
)
def test_bad_npz_names_the_file_and_the_problem(tmp_path: Path, change, message: str) -> None:
    arrays = _medmnist_arrays(np.random.default_rng(1))
    change(arrays)
    path = tmp_path / "bad_set.npz"
    np.savez(path, **arrays)
    with pytest.raises(DatasetError) as err:
        load_npz(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_corrupt_or_pickled_npz_is_refused(tmp_path: Path, data_dir: Path) -> None:
    truncated = tmp_path / "truncated.npz"
    truncated.write_bytes((data_dir / "breastmnist.npz").read_bytes()[:5000])
    pickled = tmp_path / "pickled.npz"
    arrays = _medmnist_arrays(np.random.default_rng(2))
    arrays["class_names"] = np.array([{"evil": 1}], dtype=object)
    np.savez(pickled, **arrays)
    single = tmp_path / "single.npz"
    with single.open("wb") as handle:
        np.save(handle, np.zeros(3))
    for path in (truncated, pickled, single, tmp_path / "absent.npz"):
        with pytest.raises(DatasetError, match="npz|no such file") as err:
            load_npz(path)
        assert str(path) in str(err.value)


# ------------------------------------------------------------------------------------------ image folders


def _write(path: Path, value: int, size: tuple[int, int] = (8, 6), mode: str = "L") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    colour = value if mode == "L" else (value, 255 - value, value // 2)
    Image.new(mode, size, colour).save(path)


def _class_tree(root: Path, per_class: dict[str, int], mode: str = "L") -> None:
    for c, (name, count) in enumerate(per_class.items()):
        for i in range(count):
            _write(root / name / f"{i:03d}.png", 80 * c + i, mode=mode)  # unique per file below 80


def test_split_layout_keeps_given_splits(tmp_path: Path) -> None:
    for split, count in (("train", 4), ("val", 2), ("test", 3)):
        for name in ("benign", "malignant"):
            for i in range(count):
                _write(tmp_path / split / name / f"{i}.png", i)
    loaded = load_image_folder(tmp_path)
    assert loaded.class_names == ["benign", "malignant"]
    assert loaded.counts() == {"train": [4, 4], "val": [2, 2], "test": [3, 3]}
    assert loaded.channels == 1 and loaded.image_size == (6, 8)  # (H, W) from an 8-wide, 6-high PNG
    assert loaded.train.images[1, 0, 0, 0] == 1  # sorted file order, pixel value kept


def test_split_layout_carves_missing_val_from_train(tmp_path: Path) -> None:
    _class_tree(tmp_path / "train", {"a": 10, "b": 10})
    _class_tree(tmp_path / "test", {"a": 2, "b": 2})
    loaded = load_image_folder(tmp_path)  # only val is missing: it takes its 15 % of train (1.5 -> 2)
    assert loaded.counts() == {"train": [8, 8], "val": [2, 2], "test": [2, 2]}


def test_class_layout_is_split_stratified_and_seeded(tmp_path: Path) -> None:
    _class_tree(tmp_path, {"cyst": 20, "hemangioma": 10, "metastasis": 30}, mode="RGB")
    first = load_image_folder(tmp_path)
    assert first.channels == 3
    assert first.counts() == {"train": [14, 6, 20], "val": [3, 2, 5], "test": [3, 2, 5]}  # 70/15/15, half up
    again = load_image_folder(tmp_path)
    np.testing.assert_array_equal(first.test.images, again.test.images)
    # the seed is the rule's: another seed carves other images
    given = {"train": Split(np.concatenate([first.splits[s].images for s in ("train", "val", "test")]),
                            np.concatenate([first.splits[s].labels for s in ("train", "val", "test")]))}  # fmt: skip
    other = carve_missing(given, first.class_names, "x", seed=CARVE_SEED + 1)
    assert not np.array_equal(np.sort(first.test.images, axis=0), np.sort(other["test"].images, axis=0))
    # no image is in two splits: the pixel fingerprints (unique per file) are disjoint
    keys = {s: {tuple(im[0, 0]) for im in first.splits[s].images} for s in ("train", "val", "test")}
    assert not keys["train"] & keys["val"] and not keys["train"] & keys["test"] and not keys["val"] & keys["test"]
    assert load_dataset(tmp_path).counts() == first.counts()


def test_gray_and_colour_mixed_folder_becomes_rgb(tmp_path: Path) -> None:
    _class_tree(tmp_path / "train", {"a": 2, "b": 2})
    _write(tmp_path / "train" / "b" / "colour.jpg", 100, mode="RGB")
    _class_tree(tmp_path / "val", {"a": 1, "b": 1})
    _class_tree(tmp_path / "test", {"a": 1, "b": 1})
    loaded = load_image_folder(tmp_path)
    assert loaded.channels == 3
    gray = loaded.train.images[0]
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()


def test_sixteen_bit_png_is_rescaled_not_clipped(tmp_path: Path) -> None:
    for name in ("a", "b"):
        for i in range(3):
            for split in ("train", "val", "test"):
                target = tmp_path / split / name / f"{i}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(np.full((4, 4), 65535 if name == "b" else 257 * 10, np.uint16)).save(target)
    loaded = load_image_folder(tmp_path)
    assert loaded.train.images[loaded.train.labels == 1].min() == 255
    assert loaded.train.images[loaded.train.labels == 0].max() == 10


def test_mixed_size_folder_names_the_first_differing_file(tmp_path: Path) -> None:
    _class_tree(tmp_path, {"a": 5, "b": 5})
    _write(tmp_path / "b" / "002.png", 0, size=(9, 9))
    with pytest.raises(DatasetError, match="9x9 differs") as err:
        load_image_folder(tmp_path)
    assert str(tmp_path / "b" / "002.png") in str(err.value)


@pytest.mark.parametrize("problem", ["not_an_image", "gif", "empty_class", "stray", "too_few"])
def test_bad_folders_name_the_file(tmp_path: Path, problem: str) -> None:
    _class_tree(tmp_path, {"a": 6, "b": 6})
    if problem == "not_an_image":
        bad = tmp_path / "a" / "zzz.png"
        bad.write_bytes(b"this is not a png")
    elif problem == "gif":  # a real GIF renamed .png: outside the format allow-list
        bad = tmp_path / "a" / "zzz.png"
        Image.new("L", (8, 6)).save(bad, format="GIF")
    elif problem == "empty_class":
        bad = tmp_path / "c"
        bad.mkdir()
    elif problem == "stray":
        bad = tmp_path / "loose.png"
        _write(bad, 0)
    else:
        shutil.rmtree(tmp_path / "b")
        _class_tree(tmp_path, {"b": 1})
        bad = tmp_path
    with pytest.raises(DatasetError) as err:
        load_image_folder(tmp_path)
    assert str(bad) in str(err.value)


def test_load_dataset_rejects_other_paths(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b")
    with pytest.raises(DatasetError, match="x.csv"):
        load_dataset(tmp_path / "x.csv")


def test_junk_files_are_skipped_and_other_files_refused(tmp_path: Path) -> None:
    _class_tree(tmp_path, {"a": 4, "b": 4})
    (tmp_path / ".DS_Store").write_bytes(b"junk")
    (tmp_path / "a" / "._000.png").write_bytes(b"junk")
    (tmp_path / "__MACOSX").mkdir()
    (tmp_path / "__MACOSX" / "x.png").write_bytes(b"junk")
    (tmp_path / ".hidden").mkdir()  # a hidden folder is neither a class nor an empty class
    assert load_image_folder(tmp_path).num_images == 8
    (tmp_path / "b" / "notes.txt").write_text("not pixels")  # every other file must be an image
    with pytest.raises(DatasetError, match="not an image in an accepted format") as err:
        load_image_folder(tmp_path)
    assert str(tmp_path / "b" / "notes.txt") in str(err.value)


def test_a_registered_decoder_reads_its_suffix_when_its_format_is_allowed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DICOM plug-in point: a decoder for a suffix, used only when its format name is allowed."""
    from models.datasets import ReadOptions, decode, register_decoder

    monkeypatch.setattr(decode, "_PLUGINS", {})
    register_decoder("FAKE", (".fake",), lambda data, where, options: np.full((6, 8, 1), data[0], np.uint8))
    _class_tree(tmp_path, {"a": 4, "b": 4})
    (tmp_path / "a" / "scan.FAKE").write_bytes(bytes([200]))
    with pytest.raises(DatasetError, match="not an image in an accepted format"):
        load_image_folder(tmp_path)  # FAKE is not in the default formats: Pillow is asked, and refuses
    loaded = load_image_folder(tmp_path, ReadOptions(formats=("PNG", "FAKE")))
    assert loaded.num_images == 9 and 200 in np.concatenate([s.images.ravel() for s in loaded.splits.values()])


# ------------------------------------------------------------------------------ carving rule, usability rule


def test_carve_counts_are_70_15_15_rounded_half_up_with_one_image_at_least() -> None:
    assert CARVE_PERCENT == {"val": 15, "test": 15} and CARVE_SEED == 0
    both = ["val", "test"]
    assert carve_counts(100, both) == {"val": 15, "test": 15}  # train keeps 70
    assert carve_counts(20, both) == {"val": 3, "test": 3}
    assert carve_counts(10, both) == {"val": 2, "test": 2}  # 1.5 rounds up
    assert carve_counts(3, both) == {"val": 1, "test": 1}  # never an empty split
    assert carve_counts(40, ["test"]) == {"test": 6}  # only one missing: its 15 % of train


def _train_only(per_class: list[int], seed: int = 5) -> dict[str, Split]:
    labels = np.repeat(np.arange(len(per_class)), per_class)
    rng = np.random.default_rng(seed)
    labels = labels[rng.permutation(len(labels))]  # interleaved classes: carving must stratify by label
    images = np.arange(len(labels), dtype=np.uint8).reshape(-1, 1, 1, 1)  # pixel = original row
    return {"train": Split(images, labels)}


def test_carving_is_stratified_seeded_disjoint_and_keeps_order() -> None:
    parts = _train_only([40, 20, 7])
    carved = carve_missing(parts, ["a", "b", "c"], "src")
    assert list(carved) == ["train", "val", "test"]
    counts = {name: split.counts(3) for name, split in carved.items()}
    assert counts == {"train": [28, 14, 5], "val": [6, 3, 1], "test": [6, 3, 1]}
    rows = {name: split.images.ravel().tolist() for name, split in carved.items()}
    assert sorted(rows["train"] + rows["val"] + rows["test"]) == list(range(67))  # a partition of train
    assert all(r == sorted(r) for r in rows.values())  # every split keeps the source's order
    for split in carved.values():  # labels travel with their images
        np.testing.assert_array_equal(split.labels, parts["train"].labels[split.images.ravel()])
    again = carve_missing(parts, ["a", "b", "c"], "src")
    assert all(np.array_equal(again[n].images, carved[n].images) for n in carved)
    other = carve_missing(parts, ["a", "b", "c"], "src", seed=1)
    assert not np.array_equal(other["test"].images, carved["test"].images)


def test_carving_only_the_missing_split_and_leaving_given_ones() -> None:
    parts = _train_only([40, 20])
    given_val = Split(np.zeros((2, 1, 1, 1), np.uint8), np.array([0, 1]))
    carved = carve_missing({**parts, "val": given_val}, ["a", "b"], "src")
    assert carved["val"] is given_val
    assert carved["test"].counts(2) == [6, 3] and carved["train"].counts(2) == [34, 17]
    full = {"train": parts["train"], "val": given_val, "test": given_val}
    assert carve_missing(full, ["a", "b"], "src") == full


def test_a_class_too_small_to_carve_is_refused_with_the_reason() -> None:
    with pytest.raises(DatasetError) as err:
        carve_missing(_train_only([10, 2]), ["big", "tiny"], "lab.npz")
    message = str(err.value)
    assert message.startswith("lab.npz: class 'tiny' has 2 training image(s), too few to carve val and test")
    assert "at least 3 are needed" in message
    with pytest.raises(DatasetError, match="class 'tiny' has 1 training image\\(s\\), too few to carve test"):
        carve_missing({**_train_only([10, 1]), "val": Split(np.zeros((2, 1, 1, 1), np.uint8), np.array([0, 1]))},
                      ["big", "tiny"], "lab.npz")  # fmt: skip


def test_npz_without_val_and_test_is_carved_like_the_same_folder(tmp_path: Path) -> None:
    """``genmix run --dataset`` reads a folder and an npz of the same images into the same three splits."""
    _class_tree(tmp_path / "folder", {"a": 12, "b": 9})
    folder = load_image_folder(tmp_path / "folder")
    pool = np.concatenate([folder.splits[s].images for s in ("train", "val", "test")])
    labels = np.concatenate([folder.splits[s].labels for s in ("train", "val", "test")])
    order = np.lexsort((pool[:, 0, 0, 0], labels))  # back to folder order: class, then file (pixel = file index)
    np.savez(tmp_path / "same.npz", train_images=pool[order][..., 0], train_labels=labels[order],
             class_names=np.array(["a", "b"]))  # fmt: skip
    npz = load_dataset(tmp_path / "same.npz")
    assert npz.class_names == folder.class_names and npz.counts() == folder.counts()
    for split in ("train", "val", "test"):
        np.testing.assert_array_equal(npz.splits[split].images, folder.splits[split].images)
        np.testing.assert_array_equal(npz.splits[split].labels, folder.splits[split].labels)


def test_unusable_folder_is_refused_whatever_the_entrance(tmp_path: Path) -> None:
    _class_tree(tmp_path / "train", {"a": 5, "b": 5})
    _class_tree(tmp_path / "val", {"a": 1, "b": 1})
    _class_tree(tmp_path / "test", {"a": 2})
    with pytest.raises(DatasetError, match="class\\(es\\) \\['b'\\] have no images in the test split") as err:
        load_dataset(tmp_path)
    assert str(tmp_path) in str(err.value)


# ----------------------------------------------------------------------------------------- synthetic, slices


def test_synthetic_npz_round_trip_and_range_check(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    split = Split(rng.integers(0, 256, (7, 5, 5, 3), dtype=np.uint8), np.array([0, 1, 2, 2, 1, 0, 1]))
    path = save_synthetic_npz(split, tmp_path / "syn.npz", ["a", "b", "c"])
    loaded = load_synthetic_npz(path, num_classes=3)
    np.testing.assert_array_equal(loaded.images, split.images)
    np.testing.assert_array_equal(loaded.labels, split.labels)
    with np.load(path) as raw:
        assert list(raw["class_names"]) == ["a", "b", "c"]
    with pytest.raises(DatasetError, match="out of range for 2 classes"):
        load_synthetic_npz(path, num_classes=2)
    np.savez(tmp_path / "nolabels.npz", images=split.images)
    with pytest.raises(DatasetError, match="nolabels.npz: missing arrays \\['labels'\\]"):
        load_synthetic_npz(tmp_path / "nolabels.npz")


def test_slice_keeps_every_class_and_is_seeded(data_dir: Path) -> None:
    retina = load_npz(data_dir / "retinamnist.npz")
    small = slice_imageset(retina, per_split_max=20, seed=0)
    for split in ("train", "val", "test"):
        counts = small.counts()[split]
        assert sum(counts) == 20 and min(counts) >= 1
    assert small.counts()["train"][0] > small.counts()["train"][4]  # still imbalanced like the source
    same = slice_imageset(retina, per_split_max=20, seed=0)
    other = slice_imageset(retina, per_split_max=20, seed=1)
    np.testing.assert_array_equal(small.train.images, same.train.images)
    assert not np.array_equal(small.train.images, other.train.images)
    with pytest.raises(ValueError, match="cannot keep all 5 classes"):
        slice_imageset(retina, per_split_max=4)


# ------------------------------------------------------------------------------------------ fetch (offline)


def test_fetch_offline_falls_back_to_data_dir(tmp_path: Path, data_dir: Path) -> None:
    path = fetch_medmnist("breastmnist", 28, data_dir, offline=True, cache_dir=tmp_path / "cache")
    assert path == data_dir / "breastmnist.npz"
    assert fetch_medmnist("breastmnist", 64, data_dir, offline=True, cache_dir=tmp_path).name == "breastmnist_64.npz"


def test_fetch_prefers_a_verified_cache_and_ignores_a_corrupt_one(tmp_path: Path, data_dir: Path) -> None:
    cached = tmp_path / "medmnist" / "breastmnist.npz"
    cached.parent.mkdir()
    shutil.copy(data_dir / "breastmnist.npz", cached)
    assert fetch_medmnist("breastmnist", 28, data_dir, offline=True, cache_dir=tmp_path) == cached
    cached.write_bytes(b"corrupt")
    assert fetch_medmnist("breastmnist", 28, data_dir, offline=True, cache_dir=tmp_path) == data_dir / "breastmnist.npz"


def test_fetch_offline_and_neither_source_names_both(tmp_path: Path) -> None:
    with pytest.raises(DatasetError) as err:
        fetch_medmnist("breastmnist", 28, tmp_path / "empty", offline=True, cache_dir=tmp_path / "cache")
    message = str(err.value)
    assert "skipped (offline)" in message
    assert str(tmp_path / "empty" / "breastmnist.npz") in message and str(tmp_path / "cache") in message


def test_fetch_downloads_verifies_and_caches(tmp_path: Path, data_dir: Path) -> None:
    # a file:// URL exercises the real download path (stream, MD5 check, atomic rename) without a network
    source = (data_dir / "breastmnist.npz").resolve().as_uri()
    cache = tmp_path / "cache"
    path = fetch_medmnist("breastmnist", 28, tmp_path / "nowhere", offline=False, cache_dir=cache, url=source)
    assert path == cache / "medmnist" / "breastmnist.npz"
    assert load_npz(path).counts()["train"] == [147, 399]
    assert not list(path.parent.glob("*.part"))


def test_fetch_falls_back_when_the_download_fails_or_is_corrupt(tmp_path: Path, data_dir: Path) -> None:
    wrong = tmp_path / "wrong.npz"
    wrong.write_bytes(b"a different file")
    for url in ((tmp_path / "missing.npz").as_uri(), wrong.as_uri()):
        path = fetch_medmnist("breastmnist", 28, data_dir, offline=False, cache_dir=tmp_path / "c", url=url)
        assert path == data_dir / "breastmnist.npz"
        assert not list((tmp_path / "c" / "medmnist").glob("*"))  # nothing half-written or unverified kept
    with pytest.raises(DatasetError, match="failed"):
        fetch_medmnist("breastmnist", 28, tmp_path, offline=False, cache_dir=tmp_path / "c", url=wrong.as_uri())


def test_fetch_refuses_a_local_copy_with_the_wrong_md5(tmp_path: Path) -> None:
    (tmp_path / "retinamnist.npz").write_bytes(b"not the release")
    with pytest.raises(DatasetError, match="MD5 does not match"):
        fetch_medmnist("retinamnist", 28, tmp_path, offline=True, cache_dir=tmp_path / "cache")


def test_medmnist_names_and_urls() -> None:
    assert medmnist_filename("pneumoniamnist", 28) == "pneumoniamnist.npz"
    assert medmnist_filename("pneumoniamnist", 128) == "pneumoniamnist_128.npz"
    assert medmnist_url("breastmnist", 28) == "https://zenodo.org/records/5208230/files/breastmnist.npz?download=1"
    assert medmnist_url("breastmnist", 64).endswith("/10519652/files/breastmnist_64.npz?download=1")


# ------------------------------------------------------------------------------------------ conversions


def test_tensor_round_trip_and_one_hot(breast: ImageSet) -> None:
    images = breast.train.images[:5]
    tensor = to_tensor(images)
    assert tensor.shape == (5, 1, 28, 28) and tensor.dtype == torch.float32
    assert 0.0 <= float(tensor.min()) and float(tensor.max()) <= 1.0
    np.testing.assert_array_equal(to_uint8(tensor), images)
    hot = one_hot(torch.tensor([0, 1, 1]), 2)
    assert hot.tolist() == [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]


def test_every_entrance_gives_one_memory_layout() -> None:
    """A gray npz is read as a strided (N, H, W)[..., None] view; Split stores it C-ordered, so the same images
    train identically whether they came from an npz, a folder or a DICOM upload."""
    from models.datasets.imageset import Split

    view = np.zeros((3, 4, 5), np.uint8)[..., None]
    assert view.strides[-1] == 0
    split = Split(view, np.zeros(3, np.int64))
    assert split.images.strides == (20, 5, 1, 1)
