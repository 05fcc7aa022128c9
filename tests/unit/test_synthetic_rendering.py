"""Synthetic slides are rendered tile by tile: any tiling gives the same pixels, and the seed
decides everything."""

from __future__ import annotations

import numpy as np

from pathstream.shared.events import MarrowClass
from pathstream.synthetic.lymph_node_render import LymphNodeRenderer
from pathstream.synthetic.lymph_node_scene import plan_scene
from pathstream.synthetic.marrow import MarrowRenderer, case_mixture, plan_smear
from pathstream.synthetic.shapes import max_diameter, points_inside
from pathstream.synthetic.truth import LesionSize, size_class


def _node_centre(plan) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    node = plan.nodes[0]
    return int(node.blob.cx), int(node.blob.cy)


def test_lymph_node_tiles_agree_at_their_borders() -> None:
    plan = plan_scene(6000, 5000, 0.5, 2, seed=11)
    render = LymphNodeRenderer(plan)
    x, y = _node_centre(plan)
    whole = render(x - 128, y - 128, 256, 256)
    quarters = np.concatenate(
        [
            np.concatenate([render(x - 128, y - 128, 128, 128), render(x, y - 128, 128, 128)], axis=1),
            np.concatenate([render(x - 128, y, 128, 128), render(x, y, 128, 128)], axis=1),
        ],
        axis=0,
    )
    assert np.array_equal(whole, quarters)


def test_same_seed_same_slide_other_seed_other_slide() -> None:
    a = plan_scene(6000, 5000, 0.5, 2, seed=5)
    b = plan_scene(6000, 5000, 0.5, 2, seed=5)
    c = plan_scene(6000, 5000, 0.5, 2, seed=6)
    assert a.truth("s.tif") == b.truth("s.tif")
    assert a.truth("s.tif") != c.truth("s.tif")
    x, y = _node_centre(a)
    assert np.array_equal(LymphNodeRenderer(a)(x, y, 64, 64), LymphNodeRenderer(b)(x, y, 64, 64))


def test_lymph_nodes_are_dense_purple_and_glass_is_white() -> None:
    plan = plan_scene(6000, 5000, 0.5, 2, seed=11)
    render = LymphNodeRenderer(plan)
    x, y = _node_centre(plan)
    node = render(x - 64, y - 64, 128, 128).astype(float)
    glass = render(0, 0, 16, 16).astype(float)
    assert glass.mean() > 235
    # Haematoxylin-dense lymphoid tissue: darker and bluer (red lower than blue) than glass.
    assert node.mean() < 190
    assert node[..., 0].mean() < node[..., 2].mean()


def test_lesions_lie_inside_their_nodes_with_consistent_size_classes() -> None:
    for seed in range(6):
        plan = plan_scene(20000, 16000, 0.5, 4, seed=seed, positive_fraction=1.0)
        truth = plan.truth("s.tif")
        for node_plan, node in zip(plan.nodes, truth.lymph_nodes, strict=True):
            assert node.label.value == ("positive" if node.lesions else "negative")
            for lesion in node.lesions:
                polygon = np.array(lesion.polygon)
                assert points_inside(node_plan.polygon, polygon[:, 0], polygon[:, 1]).all()
                assert lesion.size_class == size_class(max_diameter(polygon) * 0.5)
        assert all(n.lesions for n in truth.lymph_nodes), "positive_fraction=1 makes every node positive"


def test_size_class_boundaries() -> None:
    assert size_class(199.9) == LesionSize.ITC
    assert size_class(200.0) == LesionSize.MICRO
    assert size_class(1999.9) == LesionSize.MICRO
    assert size_class(2000.0) == LesionSize.MACRO


def test_marrow_classes_differ_in_blasts_and_dysplasia() -> None:
    rng = np.random.default_rng(0)
    aml = [case_mixture(MarrowClass.AML, rng) for _ in range(20)]
    mds = [case_mixture(MarrowClass.MDS, rng) for _ in range(20)]
    donor = [case_mixture(MarrowClass.DONOR, rng) for _ in range(20)]
    assert min(m.blast for m in aml) >= 0.2 > max(m.blast for m in mds)
    assert min(m.dysplasia for m in mds) > max(m.dysplasia for m in donor)
    assert max(m.blast for m in donor) < min(m.blast for m in mds)


def test_marrow_smear_tiles_agree_at_their_borders() -> None:
    mixture = case_mixture(MarrowClass.MDS, np.random.default_rng(1))
    layout = plan_smear(3000, 3000, 0.25, np.random.default_rng(2))
    render = MarrowRenderer(mixture, 3, 0.25, layout)
    whole = render(1000, 1000, 200, 200)
    halves = np.concatenate([render(1000, 1000, 100, 200), render(1100, 1000, 100, 200)], axis=1)
    assert np.array_equal(whole, halves)
