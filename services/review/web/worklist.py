"""The pathologist's worklist: every study with its report status, counts, pN, flags and age."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.reporter.study_view import study_result
from pathstream.shared.db.models import Study
from pathstream.shared.db.timestamps import stored_utc
from pathstream.shared.errors import ErrorCode
from pathstream.shared.events.base import utc_now

STATUSES = ("in progress", "partial", "preliminary", "final", "amended", "corrected")
MAX_ROWS = 500


def worklist_row(result: dict[str, Any], age_s: float) -> dict[str, Any]:
    """One worklist line from a study's `study_result` and its age in seconds: status, positive /
    examined, pN and the flags a pathologist sorts by."""
    slides = result["slides"]
    failures = [s["failure"] for s in slides if s["failure"] is not None]
    qc_failed = sum(1 for f in failures if f["code"] == ErrorCode.QC_FAILED.value)
    return {
        "study_id": result["study_id"],
        "status": result["status"],
        "report_version": result["report_version"],
        "positive": result["positive"],
        "negative": result["negative"],
        "itc": result["itc"],
        "examined": result["examined"],
        "pn_category": result["pn_category"],
        "slides": len(slides),
        "signed_out_by": result["signed_out_by"],
        "age_s": round(age_s),
        "flags": {
            "below_ajcc_minimum": bool(result["below_ajcc_minimum"]) and result["examined"] > 0,
            "failed_slides": len(failures) - qc_failed,
            "qc_failed_slides": qc_failed,
            "itc_nodes": result["itc"],
            "still_scoring": not result["ready"],
        },
    }


def worklist(
    sessions: sessionmaker[Session], status: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    """The newest `limit` studies (at most MAX_ROWS) as worklist rows, newest first; `status` keeps
    only studies whose latest report has that status."""
    now = utc_now()
    rows = []
    with sessions() as session:
        studies = session.scalars(select(Study).order_by(Study.created_at.desc()).limit(min(limit, MAX_ROWS)))
        for study in list(studies):
            result = study_result(session, study.study_id)
            if status is not None and result["status"] != status:
                continue
            rows.append(worklist_row(result, (now - stored_utc(study.created_at)).total_seconds()))
    return rows
