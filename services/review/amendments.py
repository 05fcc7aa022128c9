"""Pathologist review: change an LN's label, edit / add / remove an LN contour, import QuPath edits.

Transport-free: the review CLI and the HTTP API call `Review`. Every amendment runs in one
transaction that locks the study, changes the LN, writes an audit entry (the acting principal, the
time, the reason, before and after) and records a new report version, which waits in the outbox
until the reporter publishes it as `ReportReady`. Nothing is half-applied: a bad contour or an
unknown LN raises before anything is written.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.reporter.staging import ITC_MAX_MM
from pathstream.services.reporter.study_view import study_result
from pathstream.services.reporter.versions import DEFAULT_LAB, SIGN_OUT, record_report_version
from pathstream.services.review.auth import Principal
from pathstream.services.review.contours import checked_contour
from pathstream.services.review.geojson_export import (
    KIND_LESION,
    KIND_LN,
    LESION_CLASS,
    LN_CLASS,
    ln_feature_id,
    slide_feature_collection,
)
from pathstream.services.review.sign_out_preview import sign_out_preview
from pathstream.shared.db.models import AuditEntry, LymphNode, Slide, Study
from pathstream.shared.db.timestamps import stored_utc
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import LnLabel
from pathstream.shared.events.base import utc_now
from pathstream.shared.polygons import polygon_area

MAX_REASON_CHARS = 2000
_CLASS_LABELS = {"positive": LnLabel.POSITIVE, "negative": LnLabel.NEGATIVE}
_KNOWN_CLASSES = (LN_CLASS, "Positive", "Negative")


@dataclass(frozen=True)
class Amendment:
    """What one review call changed, and the report version it produced."""

    study_id: str
    ln_ids: tuple[str, ...]
    actions: tuple[str, ...]
    report_version: int | None


def _unknown(what: str, key: str) -> PathStreamError:
    hint = (
        "Check the study id (as the report or `pathstream run` printed it)."
        if what == "study"
        else f"List the study (`pathstream review show STUDY_ID`) to see its {what}s."
    )
    return PathStreamError(ErrorCode.UNKNOWN_ENTITY, f"There is no {what} {key}.", hint=hint)


def _checked_reason(reason: str) -> str:
    text = reason.strip()
    if not text:
        raise PathStreamError(
            ErrorCode.INVALID_AMENDMENT,
            "A reason is required for every amendment.",
            hint="Say why the result is changed; it is kept in the audit trail.",
        )
    if len(text) > MAX_REASON_CHARS:
        raise PathStreamError(
            ErrorCode.INVALID_AMENDMENT, f"The reason is longer than {MAX_REASON_CHARS} characters."
        )
    return text


def _require_pathologist(principal: Principal) -> None:
    if not principal.may_amend:
        raise PathStreamError(
            ErrorCode.FORBIDDEN,
            f"User {principal.user_id} ({principal.role.value}) may not amend results.",
            hint="Amendments need the pathologist role.",
        )


def _ln_state(node: LymphNode) -> dict[str, Any]:
    return {
        "label": None if node.label is None else node.label.value,
        "review_label": None if node.review_label is None else node.review_label.value,
        "contour_points": len(node.effective_contour),
        "area_um2": round(node.area_um2, 1),
        "removed": node.removed,
        "review_deposit_mm": node.review_deposit_mm,
    }


class Review:
    """Reads and amends results in the report database on behalf of authenticated principals."""

    def __init__(self, sessions: sessionmaker[Session], lab: tuple[str, str] = DEFAULT_LAB) -> None:
        """`lab` is the performing laboratory (id, name) named in the reports (`lab_of(settings)`)."""
        self.sessions = sessions
        self.lab = lab

    # -- reading -----------------------------------------------------------------------------

    def study(self, study_id: str) -> dict[str, Any]:
        """The study's slides and LNs with scores and labels (`study_result`); raises UNKNOWN_ENTITY."""
        with self.sessions() as session:
            if session.get(Study, study_id) is None:
                raise _unknown("study", study_id)
            return study_result(session, study_id)

    def sign_out_preview(self, principal: Principal, study_id: str) -> dict[str, Any]:
        """The report a sign-out by `principal` would issue now (`sign_out_preview`); UNKNOWN_ENTITY."""
        with self.sessions() as session:
            if session.get(Study, study_id) is None:
                raise _unknown("study", study_id)
            return sign_out_preview(session, study_id, principal, self.lab)

    def slide_geojson(self, slide_id: str) -> dict[str, Any]:
        """QuPath-importable GeoJSON of the slide's LNs; raises UNKNOWN_ENTITY."""
        with self.sessions() as session:
            if session.get(Slide, slide_id) is None:
                raise _unknown("slide", slide_id)
            return slide_feature_collection(session, slide_id)

    def audit(self, study_id: str) -> list[dict[str, Any]]:
        """The study's audit trail, oldest first."""
        with self.sessions() as session:
            if session.get(Study, study_id) is None:
                raise _unknown("study", study_id)
            rows = session.scalars(
                select(AuditEntry).where(AuditEntry.study_id == study_id).order_by(AuditEntry.id)
            )
            return [
                {
                    "at": row.at.isoformat(),
                    "actor": row.actor,
                    "action": row.action,
                    "entity_type": row.entity_type,
                    "entity_id": row.entity_id,
                    "before": row.before,
                    "after": row.after,
                    "reason": row.reason,
                }
                for row in rows
            ]

    # -- amending ----------------------------------------------------------------------------

    def set_label(
        self,
        principal: Principal,
        ln_id: str,
        label: LnLabel,
        reason: str,
        expected_revision: int | None = None,
    ) -> Amendment:
        """Override an LN's metastasis call. `expected_revision` (every LN edit takes it): the LN's
        `revision` as the editor last saw it; EDIT_CONFLICT when someone changed it since."""
        _require_pathologist(principal)
        reason = _checked_reason(reason)
        with self.sessions.begin() as session:
            node = self._locked_node(session, ln_id, expected_revision)
            if node.review_label == label:
                # The same call again: nothing to record, no new version.
                return Amendment(node.study_id, (), (), None)
            self._label(session, principal, node, label, reason)
            return self._version(session, node.study_id, [ln_id], ["label"], principal, reason)

    def set_deposit_size(
        self,
        principal: Principal,
        ln_id: str,
        deposit_mm: float | None,
        reason: str,
        expected_revision: int | None = None,
    ) -> Amendment:
        """Set the largest dimension of an LN's largest tumour deposit (mm), as measured by the
        pathologist; it overrides the size from the lesion outline and decides the node's class
        (ITC < 0.2 mm, micro 0.2-2 mm, macro > 2 mm). None removes the pathologist's size."""
        _require_pathologist(principal)
        reason = _checked_reason(reason)
        size = _checked_deposit(deposit_mm)
        with self.sessions.begin() as session:
            node = self._locked_node(session, ln_id, expected_revision)
            if node.review_deposit_mm == size:
                return Amendment(node.study_id, (), (), None)
            before = _ln_state(node)
            node.review_deposit_mm = size
            node.reviewed_by, node.reviewed_at = principal.user_id, utc_now()
            self._audit(session, principal, "set_deposit_size", node, before, reason)
            return self._version(session, node.study_id, [ln_id], ["deposit_size"], principal, reason)

    def sign_out(
        self,
        principal: Principal,
        study_id: str,
        reason: str | None = None,
        expected_report_version: int | None = None,
    ) -> Amendment:
        """Sign the study's report out: the next version is "final", signed by `principal`.

        Refused (SIGN_OUT_REFUSED) while the study has no report yet (slides outstanding or the
        slide set open), when a slide failed, or when it is already signed out; EDIT_CONFLICT when
        `expected_report_version` (the version whose summary the signer was shown) is not the latest.
        """
        _require_pathologist(principal)
        with self.sessions.begin() as session:
            study = session.get(Study, study_id)
            if study is None:
                raise _unknown("study", study_id)
            self._lock(session, study_id)
            session.refresh(study)
            if study.signed_out_at is not None:
                raise PathStreamError(
                    ErrorCode.SIGN_OUT_REFUSED,
                    f"Study {study_id} was already signed out by {study.signed_out_by}.",
                    hint="Amend it instead (every change after sign-out needs a reason).",
                )
            view = study_result(session, study_id)
            if view["report_version"] is None or not view["ready"]:
                waiting = "; ".join(view["waiting_for"]) or "its first report"
                raise PathStreamError(
                    ErrorCode.SIGN_OUT_REFUSED,
                    f"Study {study_id} cannot be signed out yet: it waits for {waiting}.",
                    hint="Sign out once the report is preliminary (`pathstream review show STUDY_ID`).",
                )
            if expected_report_version is not None and view["report_version"] != expected_report_version:
                raise PathStreamError(
                    ErrorCode.EDIT_CONFLICT,
                    f"Study {study_id} changed after its summary was shown to you (version "
                    f"{expected_report_version}, now {view['report_version']}); it was not signed out.",
                    hint="Review the new summary, then sign out again.",
                )
            failed = [s["slide_id"] for s in view["slides"] if s["status"] == "failed"]
            if failed:
                raise PathStreamError(
                    ErrorCode.SIGN_OUT_REFUSED,
                    f"Study {study_id} has failed slides ({', '.join(failed)}); its report is incomplete.",
                    hint="Reprocess them (`pathstream reprocess`) or remove them from the study first.",
                )
            study.signed_out_by, study.signed_out_at = principal.user_id, utc_now()
            session.add(
                AuditEntry(
                    actor=principal.user_id,
                    action="sign_out",
                    entity_type="study",
                    entity_id=study_id,
                    study_id=study_id,
                    before={"status": view["status"], "report_version": view["report_version"]},
                    after=None,
                    reason=(reason or "").strip() or "signed out",
                )
            )
            session.flush()
            row = record_report_version(
                session, study_id, trigger=SIGN_OUT, reason=reason, actor=principal.user_id, lab=self.lab
            )
            return Amendment(study_id, (), ("sign_out",), None if row is None else row.version)

    def set_contour(
        self,
        principal: Principal,
        ln_id: str,
        contour: list[list[float]],
        reason: str,
        expected_revision: int | None = None,
    ) -> Amendment:
        """Replace an LN's contour (level-0 px); its area follows."""
        _require_pathologist(principal)
        reason = _checked_reason(reason)
        with self.sessions.begin() as session:
            node = self._locked_node(session, ln_id, expected_revision)
            points = checked_contour(contour, _slide_size(session, node.slide_id))
            self._contour(session, principal, node, points, reason)
            return self._version(session, node.study_id, [ln_id], ["contour"], principal, reason)

    def add_lymph_node(
        self, principal: Principal, slide_id: str, contour: list[list[float]], label: LnLabel, reason: str
    ) -> Amendment:
        """Add an LN the detector missed, with the pathologist's label."""
        _require_pathologist(principal)
        reason = _checked_reason(reason)
        with self.sessions.begin() as session:
            slide = session.get(Slide, slide_id)
            if slide is None:
                raise _unknown("slide", slide_id)
            points = checked_contour(contour, _slide_size(session, slide_id))
            self._lock(session, slide.study_id)
            ln_id = self._add(session, principal, slide, points, label, reason)
            return self._version(session, slide.study_id, [ln_id], ["add"], principal, reason)

    def remove_lymph_node(
        self, principal: Principal, ln_id: str, reason: str, expected_revision: int | None = None
    ) -> Amendment:
        """Remove an LN (not a lymph node, or a duplicate); it stops counting and stays on record."""
        _require_pathologist(principal)
        reason = _checked_reason(reason)
        with self.sessions.begin() as session:
            node = self._locked_node(session, ln_id, expected_revision)
            self._remove(session, principal, node, reason)
            return self._version(session, node.study_id, [ln_id], ["remove"], principal, reason)

    def import_geojson(
        self, principal: Principal, slide_id: str, collection: dict[str, Any], reason: str
    ) -> Amendment:
        """Apply a QuPath-edited export of the slide as amendments, in one transaction.

        `Lymph node` features are matched to LNs by feature id or `pathstream.ln_id`; a changed
        outline is a contour edit, a changed class (`Positive` / `Negative`) or `pathstream.label`
        a label change, an unmatched feature a new LN (it needs a Positive / Negative class), and an
        LN whose feature was deleted is removed. Other classes (CAM `Tumor` regions) are ignored.
        """
        _require_pathologist(principal)
        reason = _checked_reason(reason)
        features = _ln_features(collection)
        with self.sessions.begin() as session:
            slide = session.get(Slide, slide_id)
            if slide is None:
                raise _unknown("slide", slide_id)
            self._lock(session, slide.study_id)
            nodes = {
                n.ln_id: n
                for n in session.scalars(
                    select(LymphNode).where(LymphNode.slide_id == slide_id, LymphNode.removed.is_(False))
                )
            }
            by_feature = {ln_feature_id(ln_id): ln_id for ln_id in nodes}
            size = _slide_size(session, slide_id)
            planned: list[tuple[str, Any]] = []
            seen: dict[str, int] = {}
            for index, item in enumerate(features):
                named = item["pathstream"].get("ln_id")
                ln_id = by_feature.get(str(item.get("id"))) or named
                try:
                    points = checked_contour(item["ring"], size)
                except PathStreamError as exc:
                    raise PathStreamError(
                        ErrorCode.INVALID_AMENDMENT, f"Feature {index}: {exc.message}", hint=exc.hint
                    ) from None
                if ln_id in seen:
                    raise PathStreamError(
                        ErrorCode.INVALID_AMENDMENT,
                        f"Features {seen[ln_id]} and {index} are both lymph node {ln_id}.",
                        hint="Delete the duplicate in QuPath (a copied feature keeps its LN id).",
                    )
                if ln_id in nodes:
                    seen[ln_id] = index
                    planned.append(("update", (nodes[ln_id], points, item["label"])))
                elif named is not None:
                    raise _foreign_ln(session, index, str(named), slide_id)
                else:
                    if item["label"] is None:
                        raise PathStreamError(
                            ErrorCode.INVALID_AMENDMENT,
                            f"Feature {index} is a new lymph node without a Positive or Negative class.",
                            hint="Set its classification to Positive or Negative in QuPath.",
                        )
                    planned.append(("add", (points, item["label"])))
            ln_ids: list[str] = []
            actions: list[str] = []
            for kind, payload in planned:
                if kind == "add":
                    points, label = payload
                    ln_ids.append(self._add(session, principal, slide, points, label, reason))
                    actions.append("add")
                    continue
                node, points, label = payload
                if points != [tuple(p) for p in node.effective_contour]:
                    self._contour(session, principal, node, points, reason)
                    ln_ids.append(node.ln_id)
                    actions.append("contour")
                if label is not None and label != node.effective_label:
                    self._label(session, principal, node, label, reason)
                    ln_ids.append(node.ln_id)
                    actions.append("label")
            for ln_id, node in nodes.items():
                if ln_id not in seen:
                    self._remove(session, principal, node, reason)
                    ln_ids.append(ln_id)
                    actions.append("remove")
            if not actions:
                return Amendment(slide.study_id, (), (), None)
            return self._version(session, slide.study_id, ln_ids, actions, principal, reason)

    # -- steps (inside the caller's transaction) ---------------------------------------------

    @staticmethod
    def _node(session: Session, ln_id: str) -> LymphNode:
        node = session.get(LymphNode, ln_id)
        if node is None or node.removed:
            raise _unknown("lymph node", ln_id)
        return node

    @classmethod
    def _locked_node(cls, session: Session, ln_id: str, expected_revision: int | None = None) -> LymphNode:
        """The LN as it is once its study is locked: the first read only finds the study, and the
        row is read again under the lock, so the audit's "before", the row and the report version
        written by this transaction all see the committed state of the amendment before it. With
        `expected_revision`, an LN changed by anyone since that revision is refused (EDIT_CONFLICT)
        rather than overwritten."""
        study_id = cls._node(session, ln_id).study_id
        cls._lock(session, study_id)
        session.expire_all()
        node = cls._node(session, ln_id)
        if expected_revision is not None:
            latest = session.scalars(
                select(AuditEntry)
                .where(AuditEntry.entity_type == "lymph_node", AuditEntry.entity_id == ln_id)
                .order_by(AuditEntry.id.desc())
                .limit(1)
            ).first()
            if latest is None and expected_revision != 0:
                raise PathStreamError(
                    ErrorCode.EDIT_CONFLICT,
                    f"LN {ln_id} has no revision {expected_revision}; it has never been edited.",
                    hint="Send the `revision` the slide view gave for this LN (0 for an unedited one).",
                )
            if latest is not None and latest.id != expected_revision:
                raise PathStreamError(
                    ErrorCode.EDIT_CONFLICT,
                    f"LN {ln_id} was changed by {latest.actor} ({latest.action}, "
                    f"{stored_utc(latest.at):%Y-%m-%d %H:%M} UTC) after you loaded it; "
                    "your change was not applied.",
                    hint="Reload the slide to see their change, then edit again if it still needs it.",
                )
        return node

    @staticmethod
    def _lock(session: Session, study_id: str) -> None:
        session.execute(select(Study.study_id).where(Study.study_id == study_id).with_for_update())

    @staticmethod
    def _audit(
        session: Session,
        principal: Principal,
        action: str,
        node: LymphNode,
        before: dict[str, Any] | None,
        reason: str,
    ) -> None:
        session.add(
            AuditEntry(
                actor=principal.user_id,
                action=action,
                entity_type="lymph_node",
                entity_id=node.ln_id,
                study_id=node.study_id,
                before=before,
                after=_ln_state(node),
                reason=reason,
            )
        )

    def _label(
        self, session: Session, principal: Principal, node: LymphNode, label: LnLabel, reason: str
    ) -> None:
        before = _ln_state(node)
        node.review_label = label
        node.reviewed_by, node.reviewed_at = principal.user_id, utc_now()
        self._audit(session, principal, "set_label", node, before, reason)

    def _contour(
        self,
        session: Session,
        principal: Principal,
        node: LymphNode,
        points: list[tuple[int, int]],
        reason: str,
    ) -> None:
        before = _ln_state(node)
        node.review_contour = [list(p) for p in points]
        node.area_um2 = _area_um2(session, node.slide_id, points)
        node.reviewed_by, node.reviewed_at = principal.user_id, utc_now()
        self._audit(session, principal, "set_contour", node, before, reason)

    def _remove(self, session: Session, principal: Principal, node: LymphNode, reason: str) -> None:
        before = _ln_state(node)
        node.removed = True
        node.reviewed_by, node.reviewed_at = principal.user_id, utc_now()
        self._audit(session, principal, "remove", node, before, reason)

    def _add(
        self,
        session: Session,
        principal: Principal,
        slide: Slide,
        points: list[tuple[int, int]],
        label: LnLabel,
        reason: str,
    ) -> str:
        index = (
            session.scalar(select(func.max(LymphNode.index)).where(LymphNode.slide_id == slide.slide_id)) or 0
        ) + 1
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        node = LymphNode(
            ln_id=f"{slide.slide_id[:180]}_rv{uuid.uuid4().hex[:8]}",
            slide_id=slide.slide_id,
            study_id=slide.study_id,
            index=index,
            contour=[list(p) for p in points],
            bbox={"x": min(xs), "y": min(ys), "width": max(xs) - min(xs), "height": max(ys) - min(ys)},
            area_um2=_area_um2(session, slide.slide_id, points),
            review_label=label,
            added_by_review=True,
            reviewed_by=principal.user_id,
            reviewed_at=utc_now(),
        )
        session.add(node)
        session.flush()
        self._audit(session, principal, "add", node, None, reason)
        return node.ln_id

    def _version(
        self,
        session: Session,
        study_id: str,
        ln_ids: list[str],
        actions: list[str],
        principal: Principal,
        reason: str,
    ) -> Amendment:
        session.flush()
        row = record_report_version(
            session,
            study_id,
            trigger=f"review:{','.join(sorted(set(actions)))}",
            reason=reason,
            actor=principal.user_id,
            lab=self.lab,
        )
        return Amendment(study_id, tuple(ln_ids), tuple(actions), None if row is None else row.version)


MAX_DEPOSIT_MM = 200.0
"""Larger than any lymph node: a size above this is a typing error (um entered as mm)."""


def _checked_deposit(deposit_mm: float | None) -> float | None:
    if deposit_mm is None:
        return None
    if (
        isinstance(deposit_mm, bool)
        or not isinstance(deposit_mm, int | float)
        or not math.isfinite(deposit_mm)
    ):
        raise PathStreamError(
            ErrorCode.INVALID_AMENDMENT, f"A deposit size must be a number of mm, not {deposit_mm!r}."
        )
    if not 0 <= deposit_mm <= MAX_DEPOSIT_MM:
        raise PathStreamError(
            ErrorCode.INVALID_AMENDMENT,
            f"A deposit size of {deposit_mm} mm is outside 0-{MAX_DEPOSIT_MM:g} mm.",
            hint=f"Give the largest dimension in millimetres (ITC are below {ITC_MAX_MM} mm).",
        )
    return float(deposit_mm)


def _slide_size(session: Session, slide_id: str) -> tuple[int, int] | None:
    """The slide's level-0 (width, height) in px, when its detection has reported it."""
    slide = session.get(Slide, slide_id)
    if slide is None or slide.width_px is None or slide.height_px is None:
        return None
    return slide.width_px, slide.height_px


def _foreign_ln(session: Session, index: int, ln_id: str, slide_id: str) -> PathStreamError:
    """The error for feature `index` naming an LN id that is not a current LN of `slide_id`."""
    node = session.get(LymphNode, ln_id)
    if node is None:
        why = f"names lymph node {ln_id}, which PathStream does not know"
    elif node.slide_id != slide_id:
        why = f"is lymph node {ln_id} of slide {node.slide_id}, not of slide {slide_id}"
    else:
        why = f"is lymph node {ln_id}, which was removed in an earlier review"
    return PathStreamError(
        ErrorCode.INVALID_AMENDMENT,
        f"Feature {index} {why}; nothing was changed.",
        hint="Import each slide's own export; for a new lymph node, draw a new feature without "
        "PathStream's properties.",
    )


def _area_um2(session: Session, slide_id: str, points: list[tuple[int, int]]) -> float:
    slide = session.get(Slide, slide_id)
    if slide is None or slide.mpp_x is None or slide.mpp_y is None:
        raise PathStreamError(
            ErrorCode.INVALID_AMENDMENT,
            f"Slide {slide_id} has no known resolution yet, so a contour's area cannot be measured.",
            hint="Amend contours after the slide's detection has been reported.",
        )
    return polygon_area(points) * slide.mpp_x * slide.mpp_y


def _ln_features(collection: Any) -> list[dict[str, Any]]:
    """The `Lymph node` polygon features of a GeoJSON FeatureCollection (or list of Features):
    [{"id", "ring", "label", "pathstream"}]; raises INVALID_AMENDMENT for malformed input."""

    def bad(why: str) -> PathStreamError:
        return PathStreamError(
            ErrorCode.INVALID_AMENDMENT,
            f"The GeoJSON is not usable: {why}.",
            hint="Import the file PathStream exported, edited in QuPath (File > Export objects as GeoJSON).",
        )

    if isinstance(collection, dict) and collection.get("type") == "FeatureCollection":
        features = collection.get("features")
    else:
        features = collection
    if not isinstance(features, list):
        raise bad("it holds no list of features")
    found = []
    for index, item in enumerate(features):
        if not isinstance(item, dict):
            raise bad(f"feature {index} is not an object")
        props = item.get("properties")
        if not isinstance(props, dict):
            raise bad(f"feature {index} has no properties object (got {json.dumps(props)})")
        raw = props.get("pathstream", {})
        if not isinstance(raw, dict):
            raise bad(f"feature {index} has a malformed properties.pathstream ({json.dumps(raw)[:80]})")
        ours: dict[str, Any] = raw
        classification = props.get("classification")
        class_name = classification.get("name") if isinstance(classification, dict) else classification
        kind = ours.get("kind")
        if kind not in (None, KIND_LN, KIND_LESION):
            raise bad(f"feature {index} has an unknown properties.pathstream.kind {json.dumps(kind)[:80]}")
        if kind == KIND_LESION or (kind is None and class_name == LESION_CLASS):
            continue  # CAM regions are the model's output, not something a pathologist edits
        if class_name is not None and class_name not in _KNOWN_CLASSES:
            raise bad(
                f"feature {index} has the class {json.dumps(class_name)[:80]}, which PathStream does not "
                f"know (lymph nodes are {', '.join(_KNOWN_CLASSES)}; {LESION_CLASS} regions are ignored)"
            )
        if kind is None and class_name is None:
            raise bad(
                f"feature {index} has no classification; classify it as {LN_CLASS}, Positive or Negative, "
                "or delete it"
            )
        if ours.get("ln_id") is not None and not isinstance(ours.get("ln_id"), str):
            raise bad(f"feature {index} has a malformed properties.pathstream.ln_id")
        geometry = item.get("geometry")
        if not isinstance(geometry, dict):  # null, a list or a string is no geometry at all
            geometry = {}
        coordinates = geometry.get("coordinates") if geometry.get("type") == "Polygon" else None
        if not isinstance(coordinates, list) or not coordinates:
            raise bad(f"feature {index} is a lymph node but not a Polygon")
        label = _CLASS_LABELS.get(str(class_name).lower()) if class_name else None
        if label is None and ours.get("label") in ("positive", "negative"):
            label = _CLASS_LABELS[ours["label"]]
        found.append({"id": item.get("id"), "ring": coordinates[0], "label": label, "pathstream": ours})
    return found
