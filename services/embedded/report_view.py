"""The report as `pathstream run` and `pathstream demo` print it: JSON for machines, tables for people."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table

from pathstream.shared.events import AJCC_MINIMUM_LNS


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _marrow_table(slide: dict[str, Any]) -> Table:
    """A smear's ROIs with their class probabilities and quality, titled with the case call."""
    marrow = slide["marrow"] or {"probabilities": {}, "rois": []}
    classes = list(marrow["probabilities"])
    if slide["marrow"] is None:
        title = f"{slide['slide_id']}: bone marrow, {slide['status']}, no case call"
    else:
        odds = ", ".join(f"{name} {marrow['probabilities'][name]:.3f}" for name in classes)
        title = f"{slide['slide_id']}: bone marrow, case call {marrow['case_call'].upper()} ({odds})"
    if slide["failure"]:
        title += f" - FAILED [{slide['failure']['code']}] {slide['failure']['message']}"
    table = Table(
        "ROI", "bbox (level 0)", *classes, "quality", "occlusion map", title=title, title_justify="left"
    )
    for roi in marrow["rois"]:
        box = roi["bbox"]
        table.add_row(
            str(roi["index"]),
            f"{box['x']},{box['y']} {box['width']}x{box['height']}",
            *(f"{roi['probabilities'].get(name, 0.0):.3f}" for name in classes),
            f"{roi['quality'].get('combined', float('nan')):.2f}",
            roi["osm_uri"] or "-",
        )
    return table


def render_study(result: dict[str, Any], truth: dict[str, dict[str, Any]] | None = None) -> Group:
    """Rich tables of one study's report; with `truth` (per ln_id: {"positive": bool, "lesion": str})
    each LN also shows its known truth, and the study line the true pN."""
    parts: list[Any] = []
    for slide in result["slides"]:
        if slide.get("marrow") is not None or slide.get("specimen") == "bone_marrow":
            parts.append(_marrow_table(slide))
            continue
        title = (
            f"{slide['slide_id']}: {slide['status']}, {slide['positive']} positive / "
            f"{slide['negative']} negative LNs"
        )
        if slide["failure"]:
            title += f" - FAILED [{slide['failure']['code']}] {slide['failure']['message']}"
        table = Table("LN", "score", "call (0.4)", "screening (0.15)", title=title, title_justify="left")
        if truth is not None:
            table.add_column("truth")
        for ln in slide["lns"]:
            row = [
                ln["ln_id"],
                _score(ln["score"]),
                (ln["label"] or "-") + (" (reviewed)" if ln["reviewed"] else ""),
                ln["screening_label"] or "-",
            ]
            if truth is not None:
                known = truth.get(ln["ln_id"])
                row.append("no matching LN" if known is None else known["describe"])
            table.add_row(*row)
        parts.append(table)
    if result["slides"] and all(
        s.get("marrow") is not None or s.get("specimen") == "bone_marrow" for s in result["slides"]
    ):
        study = Table("study", "report", "bone-marrow case calls", title="Study report")
        calls = ", ".join(
            f"{s['slide_id']}: {s['marrow']['case_call'].upper() if s['marrow'] else s['status']}"
            for s in result["slides"]
        )
        study.add_row(result["study_id"], f"v{result['report_version']} {result['status']}", calls)
        parts.append(study)
        return Group(*parts)
    study = Table("study", "report", "positive", "negative", "examined", "pN", title="Study report")
    pn = result["pn_category"] or "-"
    if result["below_ajcc_minimum"]:
        pn += f" (fewer than {AJCC_MINIMUM_LNS} LNs examined)"
    study.add_row(
        result["study_id"],
        f"v{result['report_version']} {result['status']}",
        str(result["positive"]),
        str(result["negative"]),
        str(result["examined"]),
        pn,
    )
    parts.append(study)
    return Group(*parts)
