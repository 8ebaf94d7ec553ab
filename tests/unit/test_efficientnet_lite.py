"""EfficientNet-Lite0: the wheel's ImageNet file maps tensor for tensor onto our module, which then computes exactly
what the reference implementation (``efficientnet-lite-pytorch``) computes with the same file."""

from __future__ import annotations

import pytest
import torch

from models import efficientnet_lite
from models.efficientnet_lite import (
    EfficientNetLite0,
    imagenet_weights_file,
    load_imagenet,
    map_reference_state_dict,
)


@pytest.fixture(scope="module")
def wheel_state() -> dict[str, torch.Tensor]:
    return torch.load(imagenet_weights_file(), map_location="cpu", weights_only=True)


def test_the_weights_come_from_the_installed_wheel(wheel_state) -> None:
    path = imagenet_weights_file()
    assert path.is_file() and path.name.startswith("efficientnet-lite0-") and path.suffix == ".pth"
    assert efficientnet_lite.WEIGHTS_PACKAGE in path.parts
    parameters = sum(v.numel() for k, v in wheel_state.items() if not k.endswith(("running_mean", "running_var")))
    assert 4.6e6 < parameters < 4.8e6  # 4.7 M with the 1000-class layer


def test_every_tensor_is_mapped_none_missing_none_unexpected(wheel_state) -> None:
    mapped = map_reference_state_dict(wheel_state)
    assert len(mapped) == len(wheel_state)  # no two names collapse onto one
    own = EfficientNetLite0(num_classes=1000).state_dict()
    assert set(mapped) == set(own)
    assert all(mapped[k].shape == own[k].shape and mapped[k].dtype == own[k].dtype for k in own)
    model = EfficientNetLite0(num_classes=1000)
    result = model.load_state_dict(mapped, strict=True)
    assert result.missing_keys == [] and result.unexpected_keys == []
    pairs = [
        ("stem.conv.weight", "_conv_stem.weight"),
        ("blocks.1.expand.conv.weight", "_blocks.1._expand_conv.weight"),
        ("blocks.15.project.bn.running_var", "_blocks.15._bn2.running_var"),
        ("head.bn.weight", "_bn1.weight"),
        ("fc.bias", "_fc.bias"),
    ]
    for ours, theirs in pairs:
        assert torch.equal(model.state_dict()[ours], wheel_state[theirs])


def test_a_tensor_no_rule_knows_is_an_error(wheel_state) -> None:
    with pytest.raises(KeyError, match="_blocks.0._se_reduce.weight"):
        map_reference_state_dict({**wheel_state, "_blocks.0._se_reduce.weight": torch.zeros(1)})


def test_without_a_classifier_layer_the_fc_tensors_are_left_out_and_the_rest_loads_strictly() -> None:
    model = load_imagenet(EfficientNetLite0(num_classes=None))
    assert not any(k.startswith("fc.") for k in model.state_dict())
    assert model.eval()(torch.rand(1, 3, 64, 64)).shape == (1, 1280)


@pytest.mark.parametrize("size", [224, 64, 63, 28])
def test_outputs_equal_the_reference_implementation(wheel_state, size: int) -> None:
    reference = pytest.importorskip("efficientnet_lite_pytorch")
    # image_size=None: the reference's dynamic "SAME" padding, so odd sizes compare too.
    theirs = reference.EfficientNet.from_name("efficientnet-lite0", image_size=None)
    theirs.load_state_dict(wheel_state, strict=True)
    ours = load_imagenet(EfficientNetLite0(num_classes=1000))
    theirs.eval(), ours.eval()
    x = torch.randn(3, 3, size, size, generator=torch.Generator().manual_seed(size))
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x), rtol=0, atol=1e-5)
        assert torch.allclose(ours.pooled(x), theirs.extract_features(x).mean(dim=(2, 3)), rtol=0, atol=1e-5)


def test_outputs_equal_the_reference_with_its_default_static_padding_at_224(wheel_state) -> None:
    reference = pytest.importorskip("efficientnet_lite_pytorch")
    theirs = reference.EfficientNet.from_name("efficientnet-lite0")  # padding fixed for 224 px at build time
    theirs.load_state_dict(wheel_state, strict=True)
    ours = load_imagenet(EfficientNetLite0(num_classes=1000))
    x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(ours.eval()(x), theirs.eval()(x), rtol=0, atol=1e-5)


def test_training_mode_follows_the_reference_drop_path_schedule_and_backpropagates() -> None:
    model = EfficientNetLite0(num_classes=2).train()
    model(torch.rand(4, 3, 32, 32)).sum().backward()
    assert model.stem.conv.weight.grad is not None and torch.isfinite(model.stem.conv.weight.grad).all()
    assert [round(b.drop_path, 4) for b in model.blocks][:3] == [0.0, 0.0125, 0.025]
