"""The paper's post-processing on constructed masks: diamond dilation, the 4096-pixel cut, contours."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pathstream.services.detector.postprocess import MIN_COMPONENT_PX, contours_to_level0, mask_to_contours


def _square_with_bumps(side: int, bumps: int) -> np.ndarray:
    """A side x side square plus `bumps` single pixels on its top edge, 4 pixels apart.

    Diamond dilation turns the square into (side+2)^2 - 4 pixels (the corners stay empty) and each
    bump adds exactly one pixel (the one above it); its diagonal neighbours are covered already.
    """
    mask = np.zeros((side + 40, side + 40), bool)
    top, left = 20, 20
    mask[top : top + side, left : left + side] = True
    for index in range(bumps):
        mask[top - 1, left + 10 + 4 * index] = True
    return mask


@pytest.mark.parametrize(("bumps", "kept"), [(3, 0), (4, 1)])
def test_component_of_4095_pixels_is_dropped_and_4096_kept(bumps: int, kept: int) -> None:
    mask = _square_with_bumps(62, bumps)
    dilated_size = 64 * 64 - 4 + bumps
    assert dilated_size == MIN_COMPONENT_PX - 1 + (bumps - 3)
    assert len(mask_to_contours(mask)) == kept


def test_only_the_dilation_lifts_a_component_over_4096_pixels() -> None:
    mask = np.zeros((120, 120), bool)
    mask[20:83, 20:83] = True  # 63 x 63 = 3969 pixels before, 65 * 65 - 4 = 4221 after dilation
    assert mask.sum() < MIN_COMPONENT_PX
    contours = mask_to_contours(mask)
    assert len(contours) == 1
    # The contour follows the dilated outline: one pixel outside the square on each side.
    xs, ys = contours[0][:, 0], contours[0][:, 1]
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (19, 83, 19, 83)


def test_diagonal_gap_keeps_two_nodes_apart_where_a_square_kernel_would_merge_them() -> None:
    size = 140
    y, x = np.mgrid[0:size, 0:size]
    mask = np.abs(x - y) >= 3  # two triangles; the gap is the diagonal band |x - y| <= 2
    contours = mask_to_contours(mask)
    assert len(contours) == 2
    # The same mask dilated with a 3x3 square becomes one 8-connected component.
    square = cv2.dilate(mask.astype(np.uint8), np.ones((3, 3), np.uint8))
    assert cv2.connectedComponents(square, connectivity=8)[0] - 1 == 1


def test_a_node_with_a_hole_is_one_external_contour() -> None:
    mask = np.zeros((200, 200), np.uint8)
    cv2.circle(mask, (100, 100), 60, 1, thickness=-1)
    cv2.circle(mask, (100, 100), 20, 0, thickness=-1)
    contours = mask_to_contours(mask.astype(bool))
    assert len(contours) == 1
    assert cv2.pointPolygonTest(contours[0].reshape(-1, 1, 2), (100.0, 100.0), False) > 0
    assert contours[0].dtype == np.int32 and contours[0].shape[1] == 2


def test_small_specks_are_dropped_and_order_is_top_to_bottom() -> None:
    mask = np.zeros((400, 300), bool)
    mask[250:350, 20:120] = True  # lower node
    mask[30:130, 150:250] = True  # upper node
    mask[200:205, 200:205] = True  # speck
    contours = mask_to_contours(mask)
    assert len(contours) == 2
    assert contours[0][:, 1].min() < contours[1][:, 1].min()


def test_empty_mask_gives_no_contours_and_a_3d_mask_is_refused() -> None:
    assert mask_to_contours(np.zeros((50, 50), bool)) == []
    with pytest.raises(ValueError, match="2-D"):
        mask_to_contours(np.zeros((5, 5, 3), bool))


def test_contours_map_to_level0_with_areas_in_um2() -> None:
    square = np.array([[10, 10], [109, 10], [109, 109], [10, 109]], np.int32)
    (outline,) = contours_to_level0([square], (32.0, 32.0), (0.23, 0.23), (100_000, 100_000))
    # Pixel centres: (10 + 0.5) * 32 = 336 and (109 + 0.5) * 32 = 3504.
    assert outline.contour == [(336, 336), (3504, 336), (3504, 3504), (336, 3504)]
    assert outline.bbox == (336, 336, 3168, 3168)
    assert outline.area_um2 == pytest.approx(3168 * 3168 * 0.23 * 0.23)


def test_level0_vertices_are_clipped_to_the_slide() -> None:
    square = np.array([[0, 0], [99, 0], [99, 99], [0, 99]], np.int32)
    (outline,) = contours_to_level0([square], (32.0, 32.0), (0.25, 0.25), (2000, 1500))
    xs = [p[0] for p in outline.contour]
    ys = [p[1] for p in outline.contour]
    assert max(xs) == 1999 and max(ys) == 1499 and min(xs) >= 0
