"""The browser workstation's server side over real HTTP (uvicorn), PostgreSQL and a real slide file.

Sign-in exchanges a token for an HttpOnly SameSite=Strict session cookie (the token never in a URL);
changes made with the cookie need the session's CSRF token and the service's own origin; the
worklist, the viewer's slide data, OpenSlide deep-zoom tiles with private caching and ETags, heatmaps,
and a strict Content-Security-Policy on every response.
"""

from __future__ import annotations

import io
import json
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openslide
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.reporter.handler import ReporterHandler
from pathstream.services.reporter.slide_sets import RUN
from pathstream.services.review.amendments import Review
from pathstream.services.review.api import build_api
from pathstream.services.review.auth import DatabaseTokens
from pathstream.services.review.web.pages import mount_pages
from pathstream.services.review.web.routes import Workstation
from pathstream.services.review.web.security import CONTENT_SECURITY_POLICY, VIEWER_PAGE_POLICY
from pathstream.services.review.web.sessions import BrowserSessions
from pathstream.services.review.web.tiles import SlideTiles
from pathstream.shared.db import migrate
from pathstream.shared.db.engine import create_db_engine, session_factory
from pathstream.shared.db.models import AuditEntry, Role, StudyReport
from pathstream.shared.settings import PathStreamSettings
from tests.integration.served_app import served
from tests.samples import ln_scored, slide_detected, slide_scanned

pytestmark = pytest.mark.integration

REAL_SLIDE = (
    Path(__file__).resolve().parents[3] / "shared" / "data" / "real" / "wsi" / "CMU-1-Small-Region.svs"
)


@dataclass
class Station:
    url: str
    sessions: sessionmaker[Session]
    viewer: str
    pathologist: str
    second_pathologist: str
    heatmap: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)

    @contextmanager
    def signed_in(self, token: str) -> Iterator[tuple[httpx.Client, str]]:
        """A client holding a session cookie, and the session's CSRF token."""
        with self.client() as client:
            answer = client.post("/ui/session", json={"token": token})
            assert answer.status_code == 200, answer.text
            yield client, answer.json()["csrf_token"]

    def reports(self) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(StudyReport)) or 0

    def audits(self) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(AuditEntry)) or 0


@pytest.fixture
def station(pg_url: str, tmp_path: Path) -> Iterator[Station]:
    if not REAL_SLIDE.is_file():
        pytest.fail(f"{REAL_SLIDE} is missing: the real slides come with the shared data folder")
    migrate.upgrade(pg_url)
    engine = create_db_engine(pg_url)
    sessions = session_factory(engine)
    artifacts = tmp_path / "artifacts"
    heatmap = artifacts / "S-001" / "ln000-cam.png"
    heatmap.parent.mkdir(parents=True)
    Image.fromarray(np.full((40, 60, 3), 200, np.uint8)).save(heatmap)
    reporter = ReporterHandler(PathStreamSettings(data_dir=tmp_path), sessions)
    reporter.handle(slide_scanned().model_copy(update={"uri": str(REAL_SLIDE)}))
    reporter.handle(slide_detected(ln_count=2))
    reporter.handle(ln_scored(0, 0.9).model_copy(update={"heatmap_uri": str(heatmap)}))
    reporter.handle(ln_scored(1, 0.1))
    reporter.close_slide_set("ST-001", RUN)
    tokens = DatabaseTokens(sessions)
    tokens.add_user("vera", Role.VIEWER)
    tokens.add_user("paula", Role.PATHOLOGIST, "Dr Paula")
    tokens.add_user("petra", Role.PATHOLOGIST, "Dr Petra")
    workstation = Workstation(
        BrowserSessions(sessions, timedelta(hours=1)),
        SlideTiles(sessions, [str(REAL_SLIDE.parent)]),
        [str(artifacts)],
        cookie_secure=False,  # plain HTTP on loopback; the Secure flag is checked below
        live_poll_s=0.2,
    )
    app = build_api(Review(sessions), tokens, workstation=workstation)
    with served(app) as url:
        yield Station(
            url,
            sessions,
            tokens.issue("vera").token,
            tokens.issue("paula").token,
            tokens.issue("petra").token,
            heatmap,
        )
    workstation.tiles.close()
    engine.dispose()


def test_sign_in_sets_an_httponly_strict_cookie_and_the_token_is_never_taken_from_a_url(
    station: Station,
) -> None:
    with station.client() as client:
        refused = client.post("/ui/session", json={"token": "pst_nothing_here"})
        assert refused.status_code == 401 and "set-cookie" not in refused.headers
        assert client.get("/ui/session", params={"token": station.pathologist}).status_code == 401
        assert client.get("/ui/api/worklist", params={"token": station.pathologist}).status_code == 401

        answer = client.post("/ui/session", json={"token": station.pathologist})
        assert answer.status_code == 200
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/" in cookie
        assert station.pathologist not in answer.headers["set-cookie"]
        me = client.get("/ui/session").json()
        assert me["user_id"] == "paula" and me["may_amend"] is True and me["csrf_token"]

        csrf = me["csrf_token"]
        assert client.delete("/ui/session", headers={"X-CSRF-Token": csrf}).status_code == 204
        assert client.get("/ui/session").status_code == 401


def test_the_session_cookie_is_secure_by_default(pg_url: str) -> None:
    migrate.upgrade(pg_url)
    engine = create_db_engine(pg_url)
    sessions = session_factory(engine)
    tokens = DatabaseTokens(sessions)
    tokens.add_user("paula", Role.PATHOLOGIST)
    workstation = Workstation(BrowserSessions(sessions), SlideTiles(sessions, []), [])
    app = build_api(Review(sessions), tokens, workstation=workstation)
    try:
        with served(app) as url:
            answer = httpx.post(f"{url}/ui/session", json={"token": tokens.issue("paula").token})
        assert "secure" in answer.headers["set-cookie"].lower()
    finally:
        engine.dispose()


def test_changes_with_the_cookie_need_the_csrf_token_and_the_same_origin(station: Station) -> None:
    with station.signed_in(station.pathologist) as (client, csrf):
        ln_id = _ln_ids(client)[1]
        body = {"label": "positive", "reason": "tumour cells in the sinus"}
        before = station.audits()
        missing = client.put(f"/lymph-nodes/{ln_id}/label", json=body)
        assert missing.status_code == 403 and missing.json()["error"] == "CSRF_REFUSED"
        wrong = client.put(f"/lymph-nodes/{ln_id}/label", json=body, headers={"X-CSRF-Token": "x" * 43})
        assert wrong.status_code == 403
        cross_site = client.put(
            f"/lymph-nodes/{ln_id}/label",
            json=body,
            headers={"X-CSRF-Token": csrf, "Origin": "https://evil.example"},
        )
        assert cross_site.status_code == 403
        assert station.audits() == before

        done = client.put(
            f"/lymph-nodes/{ln_id}/label", json=body, headers={"X-CSRF-Token": csrf, "Origin": station.url}
        )
        assert done.status_code == 200, done.text
        with station.sessions() as session:
            entry = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
            assert entry is not None and entry.actor == "paula" and entry.entity_id == ln_id


def test_a_viewer_session_reads_but_cannot_amend(station: Station) -> None:
    with station.signed_in(station.viewer) as (client, csrf):
        ln_id = _ln_ids(client)[0]
        refused = client.put(
            f"/lymph-nodes/{ln_id}/label",
            json={"label": "negative", "reason": "x"},
            headers={"X-CSRF-Token": csrf},
        )
        assert refused.status_code == 403 and refused.json()["error"] == "FORBIDDEN"
        assert station.audits() == 0


def test_the_worklist_shows_status_counts_pn_and_flags(station: Station) -> None:
    with station.signed_in(station.viewer) as (client, _):
        rows = client.get("/ui/api/worklist").json()
        assert [r["study_id"] for r in rows] == ["ST-001"]
        row = rows[0]
        assert (row["positive"], row["examined"], row["pn_category"]) == (1, 2, "N1")
        assert row["status"] in ("preliminary", "final", "partial")
        assert row["flags"]["below_ajcc_minimum"] is True and row["flags"]["failed_slides"] == 0
        assert row["age_s"] >= 0
        assert [
            r["study_id"] for r in client.get("/ui/api/worklist", params={"status": row["status"]}).json()
        ] == ["ST-001"]
        other = "amended" if row["status"] != "amended" else "final"
        assert client.get("/ui/api/worklist", params={"status": other}).json() == []
        bad = client.get("/ui/api/worklist", params={"status": "done"})
        assert bad.status_code == 422 and "Use one of" in bad.json()["hint"]


def test_deep_zoom_tiles_come_from_the_original_slide_with_private_caching(station: Station) -> None:
    with station.signed_in(station.viewer) as (client, _):
        view = client.get("/ui/api/slides/S-001/view").json()
        assert len(view["lns"]) == 2 and all(len(ln["contour"]) >= 3 for ln in view["lns"])
        assert {ln["source"] for ln in view["lns"]} == {"model"}
        dzi = client.get(view["dzi_url"])
        assert dzi.status_code == 200
        image = ET.fromstring(dzi.text)
        size = image.find("{*}Size")
        assert size is not None
        with openslide.OpenSlide(REAL_SLIDE) as slide:
            dimensions = slide.dimensions
        assert (int(size.get("Width", 0)), int(size.get("Height", 0))) == dimensions
        assert (int(image.get("TileSize", 0)), int(image.get("Overlap", 0))) == (254, 1)
        # Deep zoom halves down to 1 px: the full-resolution level is the last one.
        levels = int(np.ceil(np.log2(max(dimensions)))) + 1
        tile = client.get(f"/ui/api/slides/S-001/tiles_files/{levels - 1}/1_1.jpeg")
        assert tile.status_code == 200 and tile.headers["content-type"] == "image/jpeg"
        assert Image.open(io.BytesIO(tile.content)).size == (256, 256)
        assert tile.headers["cache-control"].startswith("private")
        again = client.get(
            f"/ui/api/slides/S-001/tiles_files/{levels - 1}/1_1.jpeg",
            headers={"If-None-Match": tile.headers["etag"]},
        )
        assert again.status_code == 304 and again.content == b""
        assert client.get(f"/ui/api/slides/S-001/tiles_files/{levels - 1}/999_0.jpeg").status_code == 404
        assert client.get(f"/ui/api/slides/S-001/tiles_files/{levels}/0_0.jpeg").status_code == 404
        assert client.get("/ui/api/slides/S-404/tiles.dzi").status_code == 404
    assert httpx.get(station.url + "/ui/api/slides/S-001/tiles.dzi").status_code == 401


def test_heatmaps_are_served_and_every_response_has_a_strict_csp(station: Station) -> None:
    with station.signed_in(station.viewer) as (client, _):
        view = client.get("/ui/api/slides/S-001/view").json()
        urls = [ln["heatmap_url"] for ln in view["lns"] if ln["index"] == 0]
        heat = client.get(urls[0])
        assert heat.status_code == 200 and heat.content == station.heatmap.read_bytes()
        for response in (heat, client.get("/ui/api/worklist"), client.get("/ui/session")):
            csp = response.headers["content-security-policy"]
            assert "default-src 'none'" in csp and "script-src 'self'" in csp
            assert "unsafe-inline" not in csp and "frame-ancestors 'none'" in csp
            assert response.headers["x-content-type-options"] == "nosniff"
        assert client.get("/ui/api/worklist").headers["cache-control"] == "no-store"


def test_the_pages_are_served_with_the_policy_and_revalidated_bundles(station: Station) -> None:
    with station.client() as client:
        assert client.get("/ui", follow_redirects=False).headers["location"] == "/ui/"
        worklist = client.get("/ui/")
        assert worklist.status_code == 200 and worklist.headers["content-type"].startswith("text/html")
        assert worklist.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert 'src="assets/worklist.js"' in worklist.text and "<script>" not in worklist.text
        viewer = client.get("/ui/study")
        # The viewer page alone also allows eval (Annotorious's bundled PixiJS); nothing else differs.
        assert viewer.headers["content-security-policy"] == VIEWER_PAGE_POLICY
        assert VIEWER_PAGE_POLICY.replace(" 'unsafe-eval'", "") == CONTENT_SECURITY_POLICY
        bundle = client.get("/ui/assets/study.js")
        assert bundle.status_code == 200 and bundle.headers["cache-control"] == "no-cache"
        assert "javascript" in bundle.headers["content-type"]
        # No library is fetched from elsewhere at run time: the pages name only their own assets.
        for page in (worklist.text, viewer.text):
            assert "http://" not in page and "https://" not in page and "//cdn" not in page
        assert (
            client.get("/ui/assets/study.js", headers={"If-None-Match": bundle.headers["etag"]}).status_code
            == 304
        )


def test_an_unbuilt_workstation_answers_503_naming_the_build(tmp_path: Path) -> None:
    app = FastAPI()
    mount_pages(app, tmp_path / "never-built")
    with TestClient(app) as client:
        answer = client.get("/ui/")
    assert answer.status_code == 503 and answer.json()["error"] == "WORKSTATION_NOT_BUILT"
    assert "infra/local/install.sh" in answer.json()["hint"]


def test_the_sign_out_preview_is_the_final_report_the_hospital_would_receive(station: Station) -> None:
    with station.client() as client:
        client.headers["Authorization"] = f"Bearer {station.pathologist}"
        versions = station.reports()
        preview = client.get("/studies/ST-001/sign-out-preview").json()
        assert preview["report_version"] == versions and preview["final_version"] == versions + 1
        assert "ST-001" in preview["text"] and "final" in preview["text"] and "Dr Paula" in preview["text"]
        assert preview["conclusion"] in preview["text"]
        assert station.reports() == versions  # a preview writes nothing
        assert client.get("/studies/NOPE/sign-out-preview").status_code == 404


def test_an_edit_made_on_a_stale_view_is_refused_as_a_conflict_not_overwritten(station: Station) -> None:
    with (
        station.signed_in(station.pathologist) as (paula, paula_csrf),
        station.signed_in(station.second_pathologist) as (petra, petra_csrf),
    ):
        seen = {ln["index"]: ln for ln in paula.get("/ui/api/slides/S-001/view").json()["lns"]}
        ln = seen[1]
        assert ln["revision"] == 0
        first = petra.put(
            f"/lymph-nodes/{ln['ln_id']}/label",
            json={"label": "positive", "reason": "second look", "expected_revision": 0},
            headers={"X-CSRF-Token": petra_csrf},
        )
        assert first.status_code == 200, first.text
        audits = station.audits()
        stale = paula.put(
            f"/lymph-nodes/{ln['ln_id']}/label",
            json={"label": "negative", "reason": "reactive only", "expected_revision": 0},
            headers={"X-CSRF-Token": paula_csrf},
        )
        assert stale.status_code == 409
        body = stale.json()
        assert body["error"] == "EDIT_CONFLICT" and "petra" in body["message"] and "Reload" in body["hint"]
        assert station.audits() == audits
        now = {x["index"]: x for x in paula.get("/ui/api/slides/S-001/view").json()["lns"]}[1]
        assert now["label"] == "positive" and now["source"] == "pathologist" and now["revision"] > 0
        redone = paula.put(
            f"/lymph-nodes/{ln['ln_id']}/label",
            json={"label": "negative", "reason": "reactive only", "expected_revision": now["revision"]},
            headers={"X-CSRF-Token": paula_csrf},
        )
        assert redone.status_code == 200

        shown = paula.get("/ui/api/slides/S-001/view").json()["report_version"]
        late = paula.post(
            "/studies/ST-001/sign-out",
            json={"expected_report_version": shown - 1},
            headers={"X-CSRF-Token": paula_csrf},
        )
        assert late.status_code == 409 and late.json()["error"] == "EDIT_CONFLICT"
        signed = paula.post(
            "/studies/ST-001/sign-out",
            json={"expected_report_version": shown},
            headers={"X-CSRF-Token": paula_csrf},
        )
        assert signed.status_code == 200, signed.text
        assert paula.get("/studies/ST-001").json()["status"] == "final"


def test_a_second_session_is_told_live_when_a_new_ln_is_drawn(station: Station) -> None:
    events: list[dict[str, Any]] = []
    two_seen = threading.Event()

    def listen() -> None:
        with (
            station.signed_in(station.viewer) as (viewer, _),
            viewer.stream("GET", "/ui/api/studies/ST-001/events", timeout=30) as stream,
        ):
            assert stream.headers["content-type"].startswith("text/event-stream")
            for line in stream.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[len("data: ") :]))
                    if len(events) == 2:
                        two_seen.set()
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    deadline = time.monotonic() + 15
    while not events:
        assert time.monotonic() < deadline, "no first event on the stream"
        time.sleep(0.05)
    assert events[0]["lns"] == 2
    with station.signed_in(station.pathologist) as (paula, csrf):
        drawn = paula.post(
            "/slides/S-001/lymph-nodes",
            json={
                "contour": [[6000, 6000], [6800, 6000], [6800, 6600]],
                "label": "negative",
                "reason": "missed",
            },
            headers={"X-CSRF-Token": csrf},
        )
        assert drawn.status_code == 201, drawn.text
    assert two_seen.wait(15), f"no live update; events: {events}"
    assert events[1]["lns"] == 3 and events[1]["report_version"] > events[0]["report_version"]
    assert events[1]["last_amendment"] > events[0]["last_amendment"]
    listener.join(5)
    with station.signed_in(station.viewer) as (viewer, _):
        assert viewer.get("/ui/api/studies/ST-404/events").status_code == 404


def _ln_ids(client: httpx.Client) -> list[str]:
    view: dict[str, Any] = client.get("/ui/api/slides/S-001/view").json()
    return [ln["ln_id"] for ln in sorted(view["lns"], key=lambda ln: ln["index"])]
