"""ROC figures as PNG (matplotlib's Agg canvas): the one plotting code ESCNN and marrow share.

A figure has one or more panels; a panel has named curves and, optionally, a mean curve with a
shaded band (Eckardt et al., Fig. 1: per-fold curves, their mean and its spread). The Agg canvas is used
directly, without pyplot's global state, so figures can be drawn from worker threads with no
display.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pathstream.shared.atomic_files import write_bytes_atomically


@dataclass(frozen=True)
class RocCurve:
    """One ROC curve: false-positive rates and true-positive rates (same length, from (0, 0))."""

    label: str
    fpr: np.ndarray
    tpr: np.ndarray


@dataclass(frozen=True)
class RocPanel:
    """One axes of a ROC figure."""

    title: str
    curves: list[RocCurve] = field(default_factory=list)
    mean: RocCurve | None = None
    """Drawn bold in black (e.g. the vertical average of per-fold curves)."""
    band: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    """(fpr grid, lower tpr, upper tpr) shaded around `mean`."""
    positive: str = "positive"
    """What sensitivity is of, for the y-axis label."""


def write_roc_png(path: Path, panels: list[RocPanel], title: str = "") -> None:
    """Draw `panels` side by side (each with the chance line and a legend) and write them as a PNG
    to `path` atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.2 * len(panels), 5.0), dpi=100)
    FigureCanvasAgg(figure)
    for column, panel in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), column + 1)
        for curve in panel.curves:
            axes.plot(curve.fpr, curve.tpr, linewidth=1.2, alpha=0.7, label=curve.label)
        if panel.mean is not None:
            axes.plot(panel.mean.fpr, panel.mean.tpr, color="black", linewidth=2.2, label=panel.mean.label)
        if panel.band is not None:
            grid, low, high = panel.band
            axes.fill_between(grid, np.clip(low, 0, 1), np.clip(high, 0, 1), color="grey", alpha=0.2)
        axes.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=0.8)
        axes.set_title(panel.title, fontsize=11)
        axes.set_xlabel("1 - specificity (false-positive rate)")
        axes.set_ylabel(f"sensitivity ({panel.positive})")
        axes.set_xlim(-0.01, 1.01)
        axes.set_ylim(-0.01, 1.01)
        axes.set_aspect("equal")
        if panel.curves or panel.mean is not None:
            axes.legend(loc="lower right", fontsize=8)
    if title:
        figure.suptitle(title, fontsize=11)
    # Leave room for the title above the panels' own titles.
    figure.tight_layout(rect=(0.0, 0.0, 1.0, 0.95) if title else (0.0, 0.0, 1.0, 1.0))
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    write_bytes_atomically(path, buffer.getvalue())


def draw_roc_png(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray, float]]) -> None:
    """One-panel ROC figure of named curves (name -> (fpr, tpr, auc)), AUC in each legend entry."""
    panel = RocPanel(
        "ROC",
        [RocCurve(f"{name}: AUC {auc:.3f}", fpr, tpr) for name, (fpr, tpr, auc) in curves.items()],
    )
    write_roc_png(path, [panel])
