"""The review API over real HTTP (uvicorn on a free port) and a real PostgreSQL database.

Covers authentication (no token, unknown, revoked, expired-by-disable), roles (a viewer cannot
amend), the audit trail naming the authenticated user, 4xx for invalid input with nothing changed,
each amendment making a new report version, and the QuPath GeoJSON export / import round trip.
"""

from __future__ import annotations

import base64
import itertools
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.reporter.handler import ReporterHandler
from pathstream.services.reporter.orders.intake import OrderIntake
from pathstream.services.reporter.slide_sets import RUN
from pathstream.services.review.amendments import Review
from pathstream.services.review.api import build_api
from pathstream.services.review.auth import DatabaseTokens
from pathstream.shared.db import migrate
from pathstream.shared.db.engine import create_db_engine, session_factory
from pathstream.shared.db.models import ApiToken, AuditEntry, LymphNode, Role, StudyReport
from pathstream.shared.settings import PathStreamSettings
from tests.fhir_schema import assert_fhir_r4_valid
from tests.integration.served_app import served
from tests.samples import ln_scored, slide_detected

pytestmark = pytest.mark.integration

SQUARE = [[2000, 2000], [2600, 2000], [2600, 2500], [2000, 2500]]
BOWTIE = [[0, 0], [100, 100], [100, 0], [0, 100]]


@dataclass
class Api:
    url: str
    sessions: sessionmaker[Session]
    tokens: DatabaseTokens
    viewer: str
    pathologist: str
    laboratory: str

    def call(self, method: str, path: str, token: str | None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        headers.update(kwargs.pop("headers", {}))
        return httpx.request(method, self.url + path, headers=headers, timeout=30, **kwargs)

    def state(self) -> tuple[int, int]:
        """(report versions, audit entries): what an amendment must change and a refusal must not."""
        with self.sessions() as session:
            versions = (
                session.scalar(
                    select(func.count()).select_from(StudyReport).where(StudyReport.study_id == "ST-001")
                )
                or 0
            )
            audits = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
            return versions, audits


@pytest.fixture
def api(pg_url: str, tmp_path: Any) -> Iterator[Api]:
    migrate.upgrade(pg_url)
    engine = create_db_engine(pg_url)
    sessions = session_factory(engine)
    reporter = ReporterHandler(PathStreamSettings(data_dir=tmp_path), sessions)
    other_slide = [slide_detected("S-002", "ST-009", 1), ln_scored(0, 0.2, "S-002", "ST-009")]
    for event in [slide_detected(ln_count=2), ln_scored(0, 0.9), ln_scored(1, 0.1), *other_slide]:
        reporter.handle(event)
    reporter.close_slide_set("ST-001", RUN)  # ST-009 stays open: no report until its order comes
    tokens = DatabaseTokens(sessions)
    tokens.add_user("vera", Role.VIEWER)
    tokens.add_user("paula", Role.PATHOLOGIST, "Dr Paula")
    tokens.add_user("lis", Role.LABORATORY, "Hospital LIS")
    app = build_api(Review(sessions), tokens, max_body_bytes=64_000, intake=OrderIntake(sessions))
    with served(app) as url:
        yield Api(
            url,
            sessions,
            tokens,
            tokens.issue("vera").token,
            tokens.issue("paula").token,
            tokens.issue("lis").token,
        )
    engine.dispose()


def test_every_route_needs_a_valid_token(api: Api) -> None:
    assert api.call("GET", "/studies/ST-001", None).status_code == 401
    assert api.call("GET", "/openapi.json", None).status_code == 401
    refused = api.call("GET", "/studies/ST-001", "pst_0000_not-a-real-token")
    assert refused.status_code == 401 and "unknown, revoked" in refused.json()["message"]
    assert api.call("PUT", "/lymph-nodes/S-001-ln000/label", None, json={}).status_code == 401
    schema = api.call("GET", "/openapi.json", api.viewer)
    assert schema.status_code == 200 and "/lymph-nodes/{ln_id}/label" in schema.json()["paths"]
    assert {"/orders", "/studies/{study_id}/sign-out", "/lymph-nodes/{ln_id}/deposit-size"} <= set(
        schema.json()["paths"]
    )
    validate(schema.json())  # an OpenAPI validator that did not write the document


def test_revoked_tokens_and_disabled_users_are_refused(api: Api) -> None:
    assert api.call("GET", "/studies/ST-001", api.viewer).status_code == 200
    with api.sessions() as session:
        token_id = session.scalars(select(ApiToken.token_id).where(ApiToken.user_id == "vera")).one()
    api.tokens.revoke(token_id)
    assert api.call("GET", "/studies/ST-001", api.viewer).status_code == 401
    api.tokens.set_disabled("paula", True)
    assert api.call("GET", "/studies/ST-001", api.pathologist).status_code == 401
    with api.sessions() as session:  # only hashes are stored
        stored = session.scalars(select(ApiToken.token_sha256)).all()
    assert api.viewer not in stored and all(len(h) == 64 for h in stored)


def test_a_viewer_reads_but_cannot_amend(api: Api) -> None:
    study = api.call("GET", "/studies/ST-001", api.viewer).json()
    assert (study["positive"], study["negative"], study["pn_category"]) == (1, 1, "N1")
    before = api.state()
    refused = api.call(
        "PUT", "/lymph-nodes/S-001-ln001/label", api.viewer, json={"label": "positive", "reason": "x"}
    )
    assert refused.status_code == 403 and "may not amend" in refused.json()["message"]
    assert api.state() == before


def test_a_label_change_is_audited_as_the_authenticated_user(api: Api) -> None:
    before = api.state()
    body = {"label": "positive", "reason": "Tumour cells on deeper levels."}
    spoofed = api.call(
        "PUT", "/lymph-nodes/S-001-ln001/label", api.pathologist, json={**body, "actor": "vera"}
    )
    assert spoofed.status_code == 422 and api.state() == before  # no client-chosen identity
    done = api.call("PUT", "/lymph-nodes/S-001-ln001/label", api.pathologist, json=body)
    assert done.status_code == 200, done.text
    assert done.json()["report_version"] == before[0] + 1
    study = api.call("GET", "/studies/ST-001", api.viewer).json()
    assert (study["positive"], study["negative"], study["status"]) == (2, 0, "amended")
    audit = api.call("GET", "/studies/ST-001/audit", api.viewer).json()
    assert [(a["actor"], a["action"], a["reason"]) for a in audit] == [
        ("paula", "set_label", "Tumour cells on deeper levels.")
    ]
    assert audit[0]["before"]["label"] == "negative" and audit[0]["after"]["review_label"] == "positive"
    with api.sessions() as session:
        latest = session.scalars(select(StudyReport).order_by(StudyReport.version.desc())).first()
        assert latest is not None and latest.fhir["status"] == "amended" and latest.published_at is None


LN0 = "/lymph-nodes/S-001-ln000"
INVALID = [
    ("PUT", "/lymph-nodes/NOPE/label", {"label": "positive", "reason": "r"}, 404, "no lymph node NOPE"),
    ("PUT", f"{LN0}/contour", {"contour": [[0, 0], [1, 1]], "reason": "r"}, 422, ""),
    ("PUT", f"{LN0}/contour", {"contour": BOWTIE, "reason": "r"}, 422, "crosses itself"),
    ("PUT", f"{LN0}/contour", {"contour": [[0, 0], [5, 5], [9, 9]], "reason": "r"}, 422, "no area"),
    ("PUT", f"{LN0}/contour", {"contour": SQUARE, "reason": "  "}, 422, "reason"),
    ("PUT", f"{LN0}/label", {"label": "maybe", "reason": "r"}, 422, ""),
    ("POST", "/slides/NOPE/lymph-nodes", {"contour": SQUARE, "label": "negative", "reason": "r"}, 404, ""),
    ("PUT", f"{LN0}/contour", {"contour": [[i, i % 7] for i in range(9000)], "reason": "r"}, 413, "exceeds"),
    ("PUT", f"{LN0}/contour", {"contour": [[0, 0], [1e300, 0], [0, 1e300]], "reason": "r"}, 422, "outside"),
    ("PUT", f"{LN0}/contour", {"contour": [[0, 0], [1e12, 0], [0, 10]], "reason": "r"}, 422, "40000 x 30000"),
    (
        "PUT",
        f"{LN0}/contour",
        {"contour": [[39000, 29000], [41000, 29000], [41000, 29500]], "reason": "r"},
        422,
        "outside",
    ),
    (
        "POST",
        "/slides/S-001/lymph-nodes",
        {"contour": [[0, 0], [9e9, 0], [0, 9]], "label": "negative", "reason": "r"},
        422,
        "outside",
    ),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), INVALID)
def test_invalid_input_is_refused_and_changes_nothing(
    api: Api, method: str, path: str, body: dict[str, Any], status: int, message: str
) -> None:
    before = api.state()
    response = api.call(method, path, api.pathologist, json=body)
    assert response.status_code == status, response.text
    assert message in response.text
    assert api.state() == before


def test_contour_add_and_remove_each_make_a_version(api: Api) -> None:
    versions = [api.state()[0]]
    edited = api.call(
        "PUT",
        "/lymph-nodes/S-001-ln000/contour",
        api.pathologist,
        json={"contour": SQUARE, "reason": "tighter"},
    )
    assert edited.status_code == 200, edited.text
    versions.append(edited.json()["report_version"])
    added = api.call(
        "POST",
        "/slides/S-001/lymph-nodes",
        api.pathologist,
        json={"contour": [[5000, 5000], [5400, 5000], [5400, 5300]], "label": "positive", "reason": "missed"},
    )
    assert added.status_code == 201, added.text
    versions.append(added.json()["report_version"])
    removed = api.call("POST", "/lymph-nodes/S-001-ln001/remove", api.pathologist, json={"reason": "fat"})
    versions.append(removed.json()["report_version"])
    assert versions == list(range(versions[0], versions[0] + 4))
    study = api.call("GET", "/studies/ST-001", api.viewer).json()
    assert (study["positive"], study["negative"], study["status"]) == (2, 0, "amended")
    assert study["slides"][0]["status"] == "complete"  # removed and added LNs keep the slide complete
    lns = {ln["ln_id"]: ln for ln in study["slides"][0]["lns"]}
    assert "S-001-ln001" not in lns and len(lns) == 2
    geojson = api.call("GET", "/slides/S-001/geojson", api.viewer).json()
    first = next(f for f in geojson["features"] if f["properties"]["name"] == "S-001-ln000")
    assert first["geometry"]["coordinates"][0][:4] == SQUARE


def test_qupath_export_and_import_round_trip(api: Api) -> None:
    exported = api.call("GET", "/slides/S-001/geojson", api.viewer).json()
    ln_features = [
        f for f in exported["features"] if f["properties"]["classification"]["name"] == "Lymph node"
    ]
    assert len(ln_features) == 2 and ln_features[0]["properties"]["measurements"]["ESCNN score"] == 0.9
    unchanged = api.call(
        "POST", "/slides/S-001/geojson", api.pathologist, json={"geojson": exported, "reason": "no edits"}
    )
    assert unchanged.status_code == 200 and unchanged.json()["report_version"] is None
    # In QuPath: LN 1 reclassified Positive, LN 0 deleted, a new Negative LN drawn.
    edited = {"type": "FeatureCollection", "features": []}
    second = ln_features[1]
    second["properties"]["classification"] = {"name": "Positive", "color": [200, 0, 0]}
    edited["features"].append(second)
    edited["features"].append(
        {
            "type": "Feature",
            "geometry": {"type": "Polygon", "coordinates": [[*SQUARE, SQUARE[0]]]},
            "properties": {"objectType": "annotation", "classification": {"name": "Negative"}},
        }
    )
    before = api.state()
    imported = api.call(
        "POST", "/slides/S-001/geojson", api.pathologist, json={"geojson": edited, "reason": "QuPath review"}
    )
    assert imported.status_code == 200, imported.text
    assert sorted(imported.json()["actions"]) == ["add", "label", "remove"]
    assert api.state() == (before[0] + 1, before[1] + 3)  # one version, three audit entries
    study = api.call("GET", "/studies/ST-001", api.viewer).json()
    assert (study["positive"], study["negative"]) == (1, 1)
    bowtie = dict(second, geometry={"type": "Polygon", "coordinates": [BOWTIE]})
    crossing = {"type": "FeatureCollection", "features": [bowtie]}
    refused = api.call(
        "POST", "/slides/S-001/geojson", api.pathologist, json={"geojson": crossing, "reason": "r"}
    )
    assert refused.status_code == 422 and "crosses itself" in refused.text
    assert api.state() == (before[0] + 1, before[1] + 3)


def test_concurrent_label_changes_keep_row_audit_and_report_in_step(api: Api) -> None:
    """12 label changes of one LN at once (issue 18): each audit "before" is the previous "after",
    and the LN row, the last audit entry and the newest report version all state the same label."""
    labels = ["positive" if i % 2 == 0 else "negative" for i in range(12)]

    def change(i: int) -> int:
        body = {"label": labels[i], "reason": f"concurrent review {i}"}
        return api.call("PUT", "/lymph-nodes/S-001-ln001/label", api.pathologist, json=body).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(change, range(12)))
    assert codes == [200] * 12

    with api.sessions() as session:
        audit = session.scalars(
            select(AuditEntry).where(AuditEntry.entity_id == "S-001-ln001").order_by(AuditEntry.id)
        ).all()
        node = session.get(LymphNode, "S-001-ln001")
        newest = session.scalars(select(StudyReport).order_by(StudyReport.version.desc())).first()
        assert node is not None and newest is not None
        chain = [(a.before, a.after) for a in audit]
        row_label = node.effective_label.value
        report_positive = newest.ln_positive
    # A change to the label the LN already has makes nothing (no audit entry, no version), so
    # how many of the 12 land depends on their order; each that lands really changes the label.
    assert 1 <= len(chain) <= 12
    assert all(before["review_label"] != after["review_label"] for before, after in chain)
    assert newest.version == 1 + len(chain), "one report version per real change"
    assert chain[0][0]["review_label"] is None, "the first change saw the model's label"
    for (_, previous_after), (before, _) in itertools.pairwise(chain):
        assert before == previous_after, "an audit 'before' was stale"
    assert chain[-1][1]["review_label"] == row_label
    # LN 0 is positive by the model; LN 1 is what the last change said.
    assert report_positive == 1 + (row_label == "positive"), "the newest report disagrees with the row"


def _import(api: Api, features: list[dict[str, Any]]) -> httpx.Response:
    collection = {"type": "FeatureCollection", "features": features}
    return api.call(
        "POST", "/slides/S-001/geojson", api.pathologist, json={"geojson": collection, "reason": "r"}
    )


def _exported_lns(api: Api) -> list[dict[str, Any]]:
    exported = api.call("GET", "/slides/S-001/geojson", api.viewer).json()
    return [f for f in exported["features"] if f["properties"]["classification"]["name"] == "Lymph node"]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.update(properties=None), "no properties object"),
        (lambda f: f["properties"].update(classification={"name": "Stroma"}), "Stroma"),
        (lambda f: f["properties"].update(classification=None, pathstream=None), "malformed"),
        (
            lambda f: f["properties"]["pathstream"].update(kind="nucleus"),
            "unknown properties.pathstream.kind",
        ),
        (
            lambda f: f["properties"]["pathstream"].update(ln_id="S-002-ln000") or f.update(id="x"),
            "of slide S-002",
        ),
        (
            lambda f: f["properties"]["pathstream"].update(ln_id="S-404-ln000") or f.update(id="x"),
            "does not know",
        ),
        (
            lambda f: f.update(geometry={"type": "Polygon", "coordinates": [[[0, 0], [1e12, 0], [0, 9]]]}),
            "outside",
        ),
        (lambda f: f.update(geometry={"type": "Point", "coordinates": [5, 5]}), "not a Polygon"),
        (lambda f: f.update(geometry=[[0, 0], [9, 0], [0, 9]]), "not a Polygon"),
    ],
)
def test_a_malformed_qupath_import_is_refused_and_changes_nothing(
    api: Api, edit: Callable[[dict[str, Any]], Any], message: str
) -> None:
    features = _exported_lns(api)
    edit(features[0])
    before = api.state()
    response = _import(api, features)
    assert response.status_code == 422, response.text
    assert message in response.text and "eature 0" in response.text
    assert api.state() == before


def test_a_feature_copied_in_qupath_is_refused(api: Api) -> None:
    features = _exported_lns(api)
    response = _import(api, [*features, dict(features[0])])
    assert response.status_code == 422 and "both lymph node S-001-ln000" in response.text


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_coordinates_in_the_json_are_refused(api: Api, token: str) -> None:
    body = '{"contour": [[0, 0], [' + token + ', 0], [0, 10]], "reason": "r"}'
    before = api.state()
    response = api.call(
        "PUT", f"{LN0}/contour", api.pathologist, content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422, response.text
    assert api.state() == before


V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"


def _service_request(accession: str, patient: str, slides: list[str]) -> dict[str, Any]:
    return {
        "resourceType": "ServiceRequest",
        "id": f"order-{accession}",
        "status": "active",
        "intent": "order",
        "identifier": [
            {"type": {"coding": [{"system": V2_0203, "code": "ACSN"}]}, "value": accession},
            {"type": {"coding": [{"system": V2_0203, "code": "PLAC"}]}, "system": "urn:his", "value": "PO-1"},
        ],
        "subject": {"identifier": {"system": "urn:oid:1.2.3", "value": patient}},
        "occurrenceDateTime": "2026-12-01T07:30:00+00:00",
        "extension": [
            {"url": "https://pathstream.org/fhir/StructureDefinition/expected-slide-id", "valueString": s}
            for s in slides
        ],
    }


def _versions(api: Api, study_id: str) -> list[StudyReport]:
    with api.sessions() as session:
        return list(
            session.scalars(
                select(StudyReport).where(StudyReport.study_id == study_id).order_by(StudyReport.version)
            )
        )


def test_an_order_posted_after_the_slides_issues_the_report_with_the_patient(api: Api) -> None:
    request = _service_request("ST-009", "MRN-5", ["S-002"])
    assert_fhir_r4_valid(request)
    assert _versions(api, "ST-009") == []  # the slide set is open: no report yet
    viewer = api.call("POST", "/orders", api.viewer, json=request)
    assert viewer.status_code == 403 and "may not post orders" in viewer.json()["message"]
    posted = api.call("POST", "/orders", api.laboratory, json=request)
    assert posted.status_code == 201, posted.text
    assert posted.json() == {"study_id": "ST-009", "changed": True, "report_version": 1}
    (report,) = _versions(api, "ST-009")
    assert report.status == "preliminary"
    assert report.fhir["subject"]["identifier"] == {"system": "urn:oid:1.2.3", "value": "MRN-5"}
    assert report.fhir["basedOn"][0]["identifier"]["value"] == "PO-1"
    again = api.call("POST", "/orders", api.laboratory, json=request)
    assert again.json() == {"study_id": "ST-009", "changed": False, "report_version": None}
    other_patient = api.call("POST", "/orders", api.laboratory, json=_service_request("ST-009", "MRN-6", []))
    assert other_patient.status_code == 409 and "another patient" in other_patient.json()["message"]
    assert len(_versions(api, "ST-009")) == 1


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"not json", "not JSON"),
        (b'{"resourceType": "Patient"}', "Expected a FHIR ServiceRequest"),
        (b'{"resourceType": "ServiceRequest", "status": "active", "intent": "order"}', "subject"),
    ],
)
def test_an_invalid_order_is_refused_with_422_and_stores_nothing(api: Api, body: bytes, words: str) -> None:
    response = api.call(
        "POST", "/orders", api.laboratory, content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422 and words in response.json()["message"]
    assert _versions(api, "ST-009") == []


def test_sign_out_makes_the_report_final_signed_by_the_caller_and_a_later_change_corrected(api: Api) -> None:
    viewer = api.call("POST", "/studies/ST-001/sign-out", api.viewer, json={})
    assert viewer.status_code == 403
    signed = api.call("POST", "/studies/ST-001/sign-out", api.pathologist, json={"reason": "checked"})
    assert signed.status_code == 200, signed.text
    twice = api.call("POST", "/studies/ST-001/sign-out", api.pathologist, json={})
    assert twice.status_code == 409 and "already signed out" in twice.json()["message"]
    early = api.call("POST", "/studies/ST-009/sign-out", api.pathologist, json={})
    assert early.status_code == 409  # its slide set is still open
    size = api.call(
        "PUT", f"{LN0}/deposit-size", api.pathologist, json={"deposit_mm": 0.1, "reason": "ITC on levels"}
    )
    assert size.status_code == 200, size.text
    rows = _versions(api, "ST-001")
    assert [r.status for r in rows] == ["preliminary", "final", "corrected"]
    assert len({r.fhir["id"] for r in rows}) == 1
    assert [r.fhir["meta"]["versionId"] for r in rows] == ["1", "2", "3"]
    final, corrected = rows[1].fhir, rows[2].fhir
    assert final["resultsInterpreter"][0]["display"] == "Dr Paula"
    assert corrected["conclusionCode"][0]["text"] == "pN0(i+)"  # the only positive node is now ITC
    assert "ITC on levels" in base64.b64decode(corrected["presentedForm"][0]["data"]).decode()
    for row in rows:
        assert_fhir_r4_valid(row.fhir)
