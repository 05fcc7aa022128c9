"""Scoring one LN from a real TileDB store: equals the ordinary forward of the masked LN image."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pathstream.services.escnn.model import build_escnn, preprocess
from pathstream.services.escnn.scoring import LymphNodeImage, LymphNodeScorer, Thresholds, lesion_polygons
from pathstream.services.escnn.streaming import StreamingESCNN
from pathstream.shared.events import BBox, LnLabel, LymphNodeDetected
from pathstream.shared.tilestore.ingest import ingest_slide
from pathstream.shared.tilestore.reader import TileStore
from pathstream.synthetic.lymph_node import write_lymph_node_slide

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def store_and_node(tmp_path_factory: pytest.TempPathFactory) -> tuple[TileStore, LymphNodeDetected]:
    root = tmp_path_factory.mktemp("escnn-scoring")
    slide, truth = write_lymph_node_slide(root / "slide", 5200, 4000, 3, seed=21, mpp=0.92)
    store = TileStore.open(ingest_slide(slide, str(root / "stores"), "S26-0050_A1").store_uri)
    node = min(truth.lymph_nodes, key=lambda n: n.area_um2)
    xs, ys = [p[0] for p in node.polygon], [p[1] for p in node.polygon]
    event = LymphNodeDetected(
        ln_id="S26-0050_A1_ln000",
        slide_id="S26-0050_A1",
        study_id="S26-0050",
        index=0,
        contour=node.polygon,
        bbox=BBox(x=min(xs), y=min(ys), width=max(xs) - min(xs), height=max(ys) - min(ys)),
        area_um2=node.area_um2,
        store_uri=store.uri,
        model_version="detector@sha256:test",
    )
    return store, event


def test_masked_ln_source_is_white_outside_the_contour(
    store_and_node: tuple[TileStore, LymphNodeDetected],
) -> None:
    store, event = store_and_node
    located = LymphNodeImage.locate(store, event)
    image = located.source().read(0, 0, located.box[3], located.box[2])
    raw = located.array.read(*located.box)
    inside = located.source().inside_mask(*located.box)
    assert 0.3 < inside.mean() < 0.95
    assert (image[~inside] == 255).all() and np.array_equal(image[inside], raw[inside])
    # Reads past the box are white, and tiles agree with the whole.
    tile = located.source().read(-40, 100, 300, 200)
    assert (tile[:40] == 255).all() and np.array_equal(tile[40:], image[0:260, 100:300])


def test_scored_ln_equals_the_ordinary_forward_of_the_masked_image(
    store_and_node: tuple[TileStore, LymphNodeDetected], tmp_path: Path
) -> None:
    store, event = store_and_node
    torch.manual_seed(0)
    model = build_escnn("resnet18").eval()
    with torch.no_grad():
        model.head.bias.fill_(0.3)
    scorer = LymphNodeScorer(
        StreamingESCNN(model, tile_size=768, device="cpu"), "escnn@sha256:test", tmp_path, Thresholds()
    )
    result = scorer.score(event, store)
    located = LymphNodeImage.locate(store, event)
    image = located.source().read(0, 0, located.box[3], located.box[2])
    with torch.no_grad():
        expected = float(model(preprocess(image))[0, 0])
    assert result.logit == pytest.approx(expected, rel=1e-4, abs=1e-5)
    scored = result.event
    assert scored.score == pytest.approx(1 / (1 + np.exp(-expected)), rel=1e-4)
    assert scored.label == (LnLabel.POSITIVE if scored.score >= 0.4 else LnLabel.NEGATIVE)
    assert scored.screening_threshold == 0.15 and scored.model_version == "escnn@sha256:test"
    assert (scored.ln_id, scored.contour, scored.bbox) == (event.ln_id, event.contour, event.bbox)
    heatmap = cv2.imread(str(scored.heatmap_uri))
    assert heatmap is not None and heatmap.shape[2] == 3 and min(heatmap.shape[:2]) > 20
    assert result.cam.shape == (
        scorer.engine.geometry.out_size(located.box[3]),
        scorer.engine.geometry.out_size(located.box[2]),
    )


def test_lesion_polygons_land_where_the_cam_is_hot() -> None:
    from pathstream.services.escnn.geometry import resnet_geometry

    model = build_escnn("resnet18")
    geometry = resnet_geometry(model.stem, [model.layer1, model.layer2, model.layer3, model.layer4])
    cam = np.zeros((20, 30), np.float32)
    cam[5:8, 10:14] = 0.9  # rows 5-7, columns 10-13
    cam[15, 25] = 0.7  # a single hot cell still becomes a polygon
    polygons = sorted(lesion_polygons(cam, geometry), key=lambda p: p[:, 1].min())
    assert len(polygons) == 2
    big, single = polygons
    centre = geometry.receptive_field / 2 - geometry.padding  # cell q is centred at 32 q + this
    assert big[:, 0].min() == pytest.approx(10 * 32 + centre - 8) and big[:, 0].max() == pytest.approx(
        13 * 32 + centre + 8
    )
    assert big[:, 1].min() == pytest.approx(5 * 32 + centre - 8) and big[:, 1].max() == pytest.approx(
        7 * 32 + centre + 8
    )
    assert single[:, 0].mean() == pytest.approx(25 * 32 + centre) and len(single) == 4
    assert lesion_polygons(np.full((4, 4), 0.5, np.float32), geometry) == []


def test_lesions_are_only_drawn_inside_the_ln_contour(
    store_and_node: tuple[TileStore, LymphNodeDetected], tmp_path: Path
) -> None:
    store, event = store_and_node
    model = build_escnn("resnet18").eval()
    with torch.no_grad():
        model.head.weight.zero_()
        model.head.bias.fill_(2.0)  # CAM = sigmoid(2) = 0.88 everywhere, glass included
    scorer = LymphNodeScorer(StreamingESCNN(model, tile_size=768, device="cpu"), "escnn@sha256:t", tmp_path)
    lesions = scorer.score(event, store).event.lesion_polygons
    assert len(lesions) == 1
    xs = [p[0] for p in event.contour]
    ys = [p[1] for p in event.contour]
    lx = [p[0] for p in lesions[0]]
    ly = [p[1] for p in lesions[0]]
    # Inside the LN's bounding box (with a CAM cell's slack), not the whole read box.
    slack = 32 * 0.46 / 0.92
    assert min(lx) >= min(xs) - slack and max(lx) <= max(xs) + slack
    assert min(ly) >= min(ys) - slack and max(ly) <= max(ys) + slack
    # It follows the contour, not the rectangle of the box.
    lesion_area = cv2.contourArea(np.array(lesions[0], np.float32))
    ln_area = cv2.contourArea(np.array(event.contour, np.float32))
    box_area = event.bbox.width * event.bbox.height
    assert lesion_area == pytest.approx(ln_area, rel=0.1) and lesion_area < 0.9 * box_area


def test_real_pcam_patches_pass_through_the_masked_streaming_path() -> None:
    """Real H&E lymph-node patches (PatchCamelyon, CC0): shapes, dtypes and CAM range only.

    No accuracy claim: the model is untrained, and the patches are 10x, not the 20x ESCNN expects.
    """
    import tifffile

    from pathstream.services.detector.inference import padded_region
    from pathstream.services.escnn.lymph_node_source import ContourMaskedSource
    from tests.conftest import SHARED_DATA

    patches = sorted((SHARED_DATA / "lymph_node_pcam").rglob("*.tif"))
    assert len(patches) == 15
    torch.manual_seed(0)
    model = build_escnn("resnet18").eval()
    engine = StreamingESCNN(model, tile_size=256, device="cpu")
    for path in patches:
        patch = tifffile.imread(path)
        assert patch.dtype == np.uint8 and patch.shape == (96, 96, 3)
        octagon = np.array(
            [[30, 0], [66, 0], [96, 30], [96, 66], [66, 96], [30, 96], [0, 66], [0, 30]], float
        )
        source = ContourMaskedSource(
            lambda x, y, w, h, p=patch: padded_region(p, x, y, w, h, 255), (0, 0, 96, 96), octagon
        )
        logit, cam = engine.infer(source)
        assert logit.shape == (1,) and torch.isfinite(logit).all()
        assert cam.shape == (3, 3) and float(cam.min()) >= 0 and float(cam.max()) <= 1
        assert (source.read(0, 0, 96, 96)[0, 0] == 255).all()  # a corner outside the octagon is glass
