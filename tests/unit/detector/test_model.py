"""DeepLabv3+ detector: shapes, output stride, strict checkpoints, ImageNet backbone weights."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torchvision

from pathstream.services.detector.model import (
    DeepLabV3Plus,
    DetectorConfig,
    build_detector,
    checkpoint_version,
    load_backbone_weights,
    read_checkpoint,
    save_checkpoint,
)
from pathstream.shared.errors import ErrorCode, PathStreamError

SMALL = DetectorConfig(backbone="resnet18", aspp_channels=32, decoder_channels=32, low_level_channels=16)


def test_two_class_logits_at_input_size_for_any_size() -> None:
    model = DeepLabV3Plus(SMALL).eval()
    for height, width in ((64, 96), (100, 70)):
        assert model(torch.zeros(2, 3, height, width)).shape == (2, 2, height, width)


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50"])
def test_encoder_has_output_stride_16_and_the_skip_stride_4(backbone: str) -> None:
    model = DeepLabV3Plus(DetectorConfig(backbone=backbone, aspp_channels=16, decoder_channels=16)).eval()
    x = torch.zeros(1, 3, 128, 128)
    low = model.layer1(model.stem(x))
    high = model.layer4(model.layer3(model.layer2(low)))
    assert low.shape[-1] == 32 and high.shape[-1] == 8
    dilations = {m.dilation for m in model.layer4.modules() if isinstance(m, torch.nn.Conv2d)}
    assert (2, 2) in dilations


def test_paper_default_is_resnet50_with_aspp_rates_6_12_18() -> None:
    model = DeepLabV3Plus()
    assert model.config.backbone == "resnet50" and model.config.atrous_rates == (6, 12, 18)
    rates = [m[0].dilation for m in model.aspp.convs[1:4]]
    assert rates == [(6, 6), (12, 12), (18, 18)]


def test_checkpoint_round_trip_rebuilds_the_config_and_records_a_version(tmp_path: Path) -> None:
    model = DeepLabV3Plus(SMALL).eval()
    path = tmp_path / "best.pt"
    version = save_checkpoint(model, path, {"iteration": 7})
    assert version == checkpoint_version(path) and version.startswith("detector@sha256:")
    loaded = build_detector(weights=path).eval()
    assert loaded.config == SMALL
    x = torch.rand(1, 3, 64, 64)
    assert torch.equal(model(x), loaded(x))
    assert read_checkpoint(path)["iteration"] == 7
    assert not list(tmp_path.glob("*.partial"))


def test_a_checkpoint_with_missing_keys_is_refused_by_name(tmp_path: Path) -> None:
    model = DeepLabV3Plus(SMALL)
    path = tmp_path / "bad.pt"
    save_checkpoint(model, path)
    state = torch.load(path, weights_only=True)
    del state["state_dict"]["classifier.weight"]
    torch.save(state, path)
    with pytest.raises(PathStreamError, match=r"missing classifier\.weight") as info:
        build_detector(weights=path)
    assert info.value.code == ErrorCode.MODEL_UNAVAILABLE


def test_non_checkpoints_and_missing_files_are_model_unavailable(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file")
    tv = tmp_path / "resnet.pt"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tv)
    for path, message in (
        (garbage, "Cannot read"),
        (tv, "not a PathStream detector"),
        (tmp_path / "x.pt", "Cannot find"),
    ):
        with pytest.raises(PathStreamError, match=message) as info:
            build_detector(weights=path)
        assert info.value.code == ErrorCode.MODEL_UNAVAILABLE


def test_imagenet_backbone_weights_load_into_the_encoder(tmp_path: Path) -> None:
    resnet = torchvision.models.resnet18(weights=None)
    torch.nn.init.constant_(resnet.layer3[0].conv1.weight, 0.125)
    path = tmp_path / "resnet18.pth"
    torch.save(resnet.state_dict(), path)
    model = DeepLabV3Plus(SMALL)
    load_backbone_weights(model, path)
    assert torch.equal(model.layer3[0].conv1.weight, resnet.layer3[0].conv1.weight)
    assert torch.equal(model.stem[1].running_var, resnet.bn1.running_var)


def test_backbone_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), path)
    with pytest.raises(PathStreamError, match="do not fit a resnet18") as info:
        load_backbone_weights(DeepLabV3Plus(SMALL), path)
    assert info.value.code == ErrorCode.MODEL_UNAVAILABLE


def test_unknown_backbone_is_a_configuration_error() -> None:
    with pytest.raises(PathStreamError, match="Unknown detector backbone"):
        DetectorConfig(backbone="vgg16")
