"""The report as `pathstream run` and `pathstream demo` print it: JSON for machines, tables for people."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table

from shared.events import AJCC_MINIMUM_LNS


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_study(result: dict[str, Any], truth: dict[str, dict[str, Any]] | None = None) -> Group:
    """Rich tables of one study's report; with `truth` (per ln_id: {"positive": bool, "lesion": str})
    each LN also shows its known truth, and the study line the true pN."""
    parts: list[Any] = []
    for slide in result["slides"]:
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
