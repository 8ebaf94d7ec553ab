"""Classifiers build for the data's shapes, give logits and features, and load local weight files."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import save_file

from models.classifiers import ClassifierError, build_classifier


@pytest.mark.parametrize("name", ["smallcnn", "resnet18", "vgg16"])
@pytest.mark.parametrize(("channels", "size"), [(1, 28), (3, 64)])
def test_forward_shapes(name: str, channels: int, size: int) -> None:
    model = build_classifier(name, channels, 3, (size, size)).eval()
    x = torch.rand(2, channels, size, size)
    with torch.no_grad():
        logits = model(x)
        features = model.features(x)
    assert logits.shape == (2, 3)
    assert features.shape == (2, model.feature_dim)
    assert torch.isfinite(logits).all()


def test_vgg16_keeps_pools_that_fit_and_drops_the_rest() -> None:
    pools = lambda m: sum(isinstance(l, torch.nn.MaxPool2d) for l in m.backbone[0])  # noqa: E731,E741
    assert pools(build_classifier("vgg16", 1, 2, (28, 28))) == 4
    assert pools(build_classifier("vgg16", 1, 2, (64, 64))) == 5


def test_local_weights_file_is_loaded(tmp_path) -> None:
    source = build_classifier("resnet18", 3, 2, (64, 64))
    state = {f"{k}": v for k, v in source.backbone.state_dict().items()}
    path = tmp_path / "resnet18.safetensors"
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    loaded = build_classifier("resnet18", 3, 2, (64, 64), weights=path)
    assert torch.equal(loaded.backbone.layer1[0].conv1.weight, source.backbone.layer1[0].conv1.weight)


def test_bad_names_and_files_are_clear_errors(tmp_path) -> None:
    with pytest.raises(ClassifierError, match="unknown classifier 'alexnet'"):
        build_classifier("alexnet", 1, 2, (28, 28))
    with pytest.raises(ClassifierError, match="does not exist"):
        build_classifier("vgg16", 1, 2, (28, 28), weights=tmp_path / "missing.pth")
    unrelated = tmp_path / "other.safetensors"
    save_file({"foo": torch.zeros(3)}, str(unrelated))
    with pytest.raises(ClassifierError, match="matches no parameter"):
        build_classifier("vgg16", 1, 2, (28, 28), weights=unrelated)
