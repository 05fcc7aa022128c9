"""Marrow networks and checkpoints: every listed architecture, ImageNet weights from a file, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

from pathstream.services.marrow.architectures import (
    ARCHITECTURES,
    build_network,
    head_prefix,
    load_imagenet_weights,
)
from pathstream.services.marrow.model import (
    MarrowClassifier,
    MarrowModelSpec,
    MarrowTask,
    read_marrow_checkpoint,
    save_marrow_checkpoint,
)
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import MarrowClass

PAPER_ARCHITECTURES = {
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "wide_resnet50_2",
    "wide_resnet101_2",
    "densenet121",
    "densenet161",
    "densenet169",
    "densenet201",
    "shufflenet_v2_x0_5",
    "shufflenet_v2_x1_0",
    "squeezenet1_1",
}


def test_every_architecture_of_the_paper_is_offered() -> None:
    assert set(ARCHITECTURES) == PAPER_ARCHITECTURES


@pytest.mark.parametrize("architecture", ["resnet18", "densenet121", "shufflenet_v2_x0_5", "squeezenet1_1"])
def test_each_head_family_outputs_the_task_classes(architecture: str) -> None:
    network = build_network(architecture, 3).eval()
    with torch.inference_mode():
        assert network(torch.zeros(2, 3, 96, 96)).shape == (2, 3)


@pytest.mark.parametrize("architecture", sorted(PAPER_ARCHITECTURES))
def test_every_architecture_builds_with_a_new_head(architecture: str) -> None:
    network = build_network(architecture, 2)
    head = [k for k in network.state_dict() if k.startswith(head_prefix(architecture) + ".")]
    assert head and all(network.state_dict()[k].shape[0] == 2 for k in head)


@pytest.mark.parametrize("architecture", ["densenet121", "squeezenet1_1", "resnet18"])
def test_imagenet_weights_load_from_a_torchvision_file_without_the_head(
    architecture: str, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    imagenet = getattr(torchvision.models, architecture)(weights=None)  # 1000-class head, like the file
    path = tmp_path / f"{architecture}.pth"
    torch.save(imagenet.state_dict(), path)
    network = build_network(architecture, 3)
    loaded = load_imagenet_weights(network, architecture, path)
    head = head_prefix(architecture) + "."
    own, source = network.state_dict(), imagenet.state_dict()
    assert loaded == sum(1 for k in own if not k.startswith(head))
    assert all(torch.equal(own[k], source[k]) for k in own if not k.startswith(head))


def test_weights_of_another_architecture_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(PathStreamError) as caught:
        load_imagenet_weights(build_network("resnet34", 2), "resnet34", path)
    assert caught.value.code == ErrorCode.MODEL_UNAVAILABLE and "resnet34" in caught.value.message


def test_unknown_architecture_and_one_class_are_configuration_errors() -> None:
    with pytest.raises(PathStreamError) as unknown:
        build_network("vgg16", 2)
    assert unknown.value.code == ErrorCode.INVALID_CONFIGURATION and "squeezenet1_1" in unknown.value.hint
    with pytest.raises(PathStreamError):
        build_network("resnet18", 1)


def test_checkpoint_round_trip_gives_the_same_probabilities(tmp_path: Path) -> None:
    torch.manual_seed(1)
    spec = MarrowModelSpec("squeezenet1_1", MarrowTask.MDS_VS_AML, input_size=96, mpp=0.2)
    network = build_network(spec.architecture, 2)
    version = save_marrow_checkpoint(network, spec, tmp_path / "best.pt")
    assert version.startswith("marrow@sha256:")
    classifier = MarrowClassifier.from_checkpoint(tmp_path / "best.pt", device="cpu")
    assert classifier.model_version == version and classifier.spec == spec
    assert classifier.classes == (MarrowClass.MDS, MarrowClass.AML)
    rng = np.random.default_rng(0)
    rois = [
        rng.integers(0, 255, (200, 160, 3), dtype=np.uint8),
        rng.integers(0, 255, (50, 50, 3), dtype=np.uint8),
    ]
    probabilities = classifier.probabilities(rois)
    assert probabilities.shape == (2, 2) and np.allclose(probabilities.sum(axis=1), 1.0)
    reference = MarrowClassifier(network, spec, version)
    assert np.allclose(reference.probabilities(rois), probabilities, atol=1e-6)


def test_bad_checkpoints_are_model_unavailable(tmp_path: Path) -> None:
    not_ours = tmp_path / "plain.pt"
    torch.save({"state_dict": {}}, not_ours)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    for path in (not_ours, garbage, tmp_path / "missing.pt"):
        with pytest.raises(PathStreamError) as caught:
            read_marrow_checkpoint(path)
        assert caught.value.code == ErrorCode.MODEL_UNAVAILABLE


def test_a_non_rgb_roi_is_refused(tmp_path: Path) -> None:
    spec = MarrowModelSpec("squeezenet1_1", MarrowTask.MDS_AML_DONOR, input_size=64)
    classifier = MarrowClassifier(build_network(spec.architecture, 3), spec, "marrow@test")
    with pytest.raises(PathStreamError) as caught:
        classifier.probabilities([np.zeros((64, 64), np.uint8)])
    assert caught.value.code == ErrorCode.INVALID_EVENT
