"""Real May-Grünwald-Giemsa marrow images through ROI scoring, classification and OSM.

The 15 images in shared/data/real/bone_marrow_mll_smear (see its MANIFEST.md) are 250 x 250 px
single-cell crops of real smears. Their resolution is not recorded; red cells in them span about
80-95 px and a red cell is about 7.5 um across, so they are treated as native images at an assumed
0.1 um/px. A crop is smaller than a 204.8 um field, so each yields exactly one ROI, the whole image.
The classifier is an untrained SqueezeNet (plumbing, not accuracy): no claim is made about its calls.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import cv2
import numpy as np
import pytest
import torch

from pathstream.services.marrow.architectures import build_network
from pathstream.services.marrow.model import MarrowClassifier, MarrowModelSpec, MarrowTask
from pathstream.services.marrow.occlusion import OcclusionConfig, occlusion_sensitivity, overlay_png
from pathstream.services.marrow.roi_features import CRITERIA
from pathstream.services.marrow.roi_proposal import RoiProposalConfig, propose_rois_in_image
from tests.conftest import SHARED_DATA

IMAGES = SHARED_DATA / "bone_marrow_mll_smear"
ASSUMED_MPP = 0.1
INPUT = 96


def _read_rgb(path: object) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert image is not None, f"cannot read {path}"
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


@pytest.fixture(scope="module")
def classifier() -> Iterator[MarrowClassifier]:
    # One thread: hundreds of tiny forward passes on a shared CPU otherwise spend most of their
    # time in thread contention (measured 25x slower with 2 threads beside another busy process).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    spec = MarrowModelSpec("squeezenet1_1", MarrowTask.MDS_AML_DONOR, input_size=INPUT, mpp=ASSUMED_MPP)
    yield MarrowClassifier(build_network(spec.architecture, 3), spec, "marrow@test", "cpu")
    torch.set_num_threads(threads)


def test_real_mgg_images_are_scored_classified_and_explained(classifier: MarrowClassifier) -> None:
    paths = sorted(IMAGES.glob("*.jpg"))
    assert len(paths) == 15, f"expected the 15 real MGG images in {IMAGES}"
    # Single-cell crops are not smear fields: keep every one, whatever it scores, to check the plumbing.
    config = RoiProposalConfig(k=4, min_score=0.0)
    crops = []
    for path in paths:
        image = _read_rgb(path)
        proposal = propose_rois_in_image(image, ASSUMED_MPP, config)
        assert len(proposal) == 1 and proposal.shortfall is not None, path.name
        roi = proposal[0]
        assert roi.bbox == (0, 0, image.shape[1], image.shape[0])
        assert set(roi.scores) == set(CRITERIA)
        assert all(0.0 <= v <= 1.0 for v in roi.quality.values()), (path.name, roi.quality)
        assert all(math.isfinite(v) for v in roi.assessment.measurements.values()), path.name
        assert roi.explanation()
        crops.append(image[roi.y : roi.y + roi.height, roi.x : roi.x + roi.width])

    probabilities = classifier.probabilities(crops)
    assert probabilities.shape == (15, 3)
    assert np.isfinite(probabilities).all()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)

    occlusion = OcclusionConfig(occluder_px=48, stride_px=48, batch_size=16)  # 2 x 2 placements
    for crop, row in zip(crops, probabilities, strict=True):
        importance = occlusion_sensitivity(
            classifier.predict_batch, crop, int(row.argmax()), occlusion, input_size=INPUT
        )
        assert importance.shape == (INPUT, INPUT)
        assert np.isfinite(importance).all() and importance.min() >= 0.0 and importance.max() <= 1.0
        png = cv2.imdecode(np.frombuffer(overlay_png(crop, importance), np.uint8), cv2.IMREAD_COLOR)
        assert png is not None and png.shape == crop.shape
