"""`pathstream synth lymph-node`: a synthetic gastric lymph-node slide and its truth file."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from pathstream.synthetic.lymph_node_render import LymphNodeRenderer
from pathstream.synthetic.lymph_node_scene import MAX_NODE_UM, MIN_NODE_UM, plan_scene
from pathstream.synthetic.pyramid_tiff import write_pyramid
from pathstream.synthetic.truth import LymphNodeSlideTruth

TRUTH_FILE = "truth.json"


def write_lymph_node_slide(
    out_dir: Path,
    width: int,
    height: int,
    nodes: int,
    seed: int,
    mpp: float = 0.25,
    positive_fraction: float = 0.4,
    name: str = "slide.tif",
    node_size_um: tuple[float, float] = (MIN_NODE_UM, MAX_NODE_UM),
    progress: Callable[[int, int], None] | None = None,
) -> tuple[Path, LymphNodeSlideTruth]:
    """Write `out_dir/name` (pyramidal TIFF, `mpp` um/px) and `out_dir/truth.json`.

    The slide is `width` x `height` level-0 pixels with `nodes` lymph nodes, about
    `positive_fraction` of them metastatic, with diameters in `node_size_um`. Deterministic in
    all arguments. Returns the slide path and its truth. Raises ValueError when the nodes do not fit.
    """
    if width < 64 or height < 64:
        raise ValueError("a synthetic slide needs at least 64 x 64 pixels")
    plan = plan_scene(width, height, mpp, nodes, seed, positive_fraction, node_size_um)
    out_dir.mkdir(parents=True, exist_ok=True)
    slide_path = out_dir / name
    write_pyramid(
        slide_path,
        width,
        height,
        mpp,
        LymphNodeRenderer(plan),
        progress=progress,
        description=f"PathStream synthetic lymph-node slide, seed {seed}",
    )
    truth = plan.truth(name)
    truth.save(out_dir / TRUTH_FILE)
    return slide_path, truth
