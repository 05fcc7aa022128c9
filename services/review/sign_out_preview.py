"""What the hospital will receive when a study is signed out now: the final version's conclusion and
its human-readable text, shown to the signer before they confirm."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from pathstream.services.reporter.fhir import ReportContext, conclusion, summary_text
from pathstream.services.reporter.store.report_inputs import load_study_inputs
from pathstream.services.reporter.summary import summarise
from pathstream.services.reporter.versions import display_name, latest_report
from pathstream.services.review.auth import Principal
from pathstream.shared.events.base import utc_now


def sign_out_preview(
    session: Session, study_id: str, signer: Principal, lab: tuple[str, str]
) -> dict[str, Any]:
    """The report a sign-out by `signer` would issue for `study_id` (an existing study): the version
    it is based on (send it back as `expected_report_version`), the one it would become, the
    conclusion and the plain-text report (FHIR presentedForm / HL7 v2 narrative) as the hospital
    gets it. Nothing is written."""
    summary = summarise(load_study_inputs(session, study_id))
    latest = latest_report(session, study_id)
    version = None if latest is None else latest.version
    context = ReportContext(
        version=(version or 0) + 1,
        status="final",
        issued=utc_now(),
        lab_id=lab[0],
        lab_name=lab[1],
        signer_id=signer.user_id,
        signer_name=display_name(session, signer.user_id),
    )
    return {
        "study_id": study_id,
        "report_version": version,
        "final_version": context.version,
        "ready": summary.ready,
        "waiting_for": list(summary.waiting_for),
        "conclusion": conclusion(summary),
        "text": summary_text(summary, context),
    }
