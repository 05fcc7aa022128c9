"""The pathologist's workstation in a real browser (Debian's chromium driven by Playwright) against
the real review service over HTTP and PostgreSQL, on a study made by `pathstream run` from a
synthetic slide with the bundled demo models.

Sign-in, the worklist, the viewer (deep-zoom tiles answered 200, one outline per LN, heatmaps, the
scale bar, keyboard navigation), a viewer account that cannot edit, relabelling (counts panel, one
audit entry, one report version, and a second browser session updated live), drawing a new LN, and
sign-out with the hospital's summary shown first. Screenshots of the worklist, the viewer and the
sign-out land in PATHSTREAM_TEST_ARTIFACTS (default build/test-artifacts/workstation).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, Response, expect, sync_playwright
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pathstream.services.demo.cohort import write_demo_study
from pathstream.services.reporter.study_view import study_result
from pathstream.services.review.amendments import Review
from pathstream.services.review.api import build_api
from pathstream.services.review.auth import DatabaseTokens
from pathstream.services.review.web.routes import Workstation
from pathstream.services.review.web.sessions import BrowserSessions
from pathstream.services.review.web.tiles import SlideTiles
from pathstream.shared.db.engine import create_db_engine, session_factory
from pathstream.shared.db.models import AuditEntry, LymphNode, Role, StudyReport
from tests.conftest import fresh_database
from tests.integration.cli_runs import demo_model_env, pathstream_cli
from tests.integration.served_app import served

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

STUDY = "WS-0001"
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = (
    Path(os.environ.get("PATHSTREAM_TEST_ARTIFACTS", REPO / "build" / "test-artifacts")) / "workstation"
)
CHROMIUM = os.environ.get("PATHSTREAM_TEST_CHROMIUM", "/usr/bin/chromium")
# As root in a container, without a GPU, on a machine whose network is closed: no sandbox, software
# WebGL for Annotorious's drawing layer, and none of Chromium's own background connections.
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--enable-unsafe-swiftshader",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class Station:
    url: str
    sessions: sessionmaker[Session]
    tokens: dict[str, str]
    slide_id: str
    browser: Browser
    problems: list[str] = field(default_factory=list)

    def page(self, user: str) -> Page:
        """A new browser session (own cookies) signed in as `user` through the sign-in form."""
        context = self.browser.new_context(viewport={"width": 1400, "height": 900})
        page = context.new_page()
        page.on("pageerror", lambda error: self.problems.append(f"{user}: {error}"))
        _submit_token(page, self.url, self.tokens[user])
        expect(page.locator("#who")).to_contain_text(f"({'viewer' if user == 'vera' else 'pathologist'})")
        return page

    def open_study(self, page: Page) -> None:
        page.goto(f"{self.url}/ui/study?study={STUDY}&slide={self.slide_id}")
        expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=30_000)

    def result(self) -> dict[str, Any]:
        with self.sessions() as session:
            return study_result(session, STUDY)

    def count(self, model: Any) -> int:
        with self.sessions() as session:
            return session.scalar(select(func.count()).select_from(model).where(model.study_id == STUDY)) or 0


def _submit_token(page: Page, url: str, token: str) -> None:
    """Open the sign-in page of the service at `url` and submit `token` through its form."""
    page.goto(f"{url}/ui/")
    page.fill("#token", token)
    page.click("#sign-in button[type=submit]")


def _run_study(work: Path, database_url: str) -> str:
    """`pathstream run` on one synthetic demo slide into `database_url`; returns its slide id."""
    slide = write_demo_study(work / "slides", 1)[0].path
    env = {**demo_model_env(work / "data"), "PATHSTREAM_DATABASE_URL": database_url}
    done = pathstream_cli("run", str(slide), "--study", STUDY, "--out", str(work / "out"), env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    return slide.stem


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Station]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} is missing: infra/local/install.sh test installs Debian's chromium")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    work = tmp_path_factory.mktemp("workstation")
    with fresh_database() as database_url:
        slide_id = _run_study(work, database_url)
        engine = create_db_engine(database_url)
        sessions = session_factory(engine)
        tokens = DatabaseTokens(sessions)
        tokens.add_user("vera", Role.VIEWER, "Vera Viewer")
        tokens.add_user("paula", Role.PATHOLOGIST, "Dr Paula")
        tokens.add_user("petra", Role.PATHOLOGIST, "Dr Petra")
        workstation = Workstation(
            BrowserSessions(sessions, timedelta(hours=1)),
            SlideTiles(sessions, [str(work / "slides")]),
            [str(work)],
            cookie_secure=False,  # plain HTTP on loopback
            live_poll_s=0.3,
        )
        app = build_api(Review(sessions), tokens, workstation=workstation)
        issued = {user: tokens.issue(user).token for user in ("vera", "paula", "petra")}
        try:
            with served(app) as url, sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=CHROMIUM, args=CHROMIUM_FLAGS, headless=True
                )
                station = Station(url, sessions, issued, slide_id, browser)
                yield station
                browser.close()
                assert not station.problems, f"script errors in the pages: {station.problems}"
        finally:
            workstation.tiles.close()
            engine.dispose()


def _slide_lns(result: dict[str, Any], slide_id: str) -> list[dict[str, Any]]:
    return next(s for s in result["slides"] if s["slide_id"] == slide_id)["lns"]


def _drag(page: Page, x: float, y: float, dx: float, dy: float) -> None:
    """Press the mouse at (x, y) CSS px of the page, move it by (dx, dy) in steps, release."""
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y + dy, steps=8)
    page.mouse.up()


def _count(page: Page, row: str, column: str) -> str:
    return page.locator(f"#counts-table tr[data-count={row}] td.{column}-count").inner_text()


def test_sign_in_then_the_worklist_shows_the_study(station: Station) -> None:
    context = station.browser.new_context()
    page = context.new_page()
    _submit_token(page, station.url, "pst_not_a_token")
    expect(page.locator("#sign-in-error")).to_contain_text("unknown")
    context.close()

    page = station.page("paula")
    result = station.result()
    row = page.locator(f"tr.study-row[data-study-id='{STUDY}']")
    expect(row).to_be_visible()
    expect(row.locator(".status")).to_have_text(result["status"])
    expect(row.locator(".positive")).to_have_text(f"{result['positive']} / {result['examined']}")
    expect(row.locator(".pn")).to_have_text(f"p{result['pn_category']}")
    # One slide cannot reach AJCC's 15 LNs: the flag a pathologist sorts by.
    expect(row.locator(".flag-below-15")).to_be_visible()
    page.screenshot(path=str(ARTIFACTS / "worklist.png"))
    page.fill("#search", "no-such-accession")
    expect(row).to_be_hidden()
    page.fill("#search", STUDY)
    row.locator("a").click()
    expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=30_000)
    assert f"study={STUDY}" in page.url and station.tokens["paula"] not in page.url
    page.context.close()


def test_the_viewer_loads_tiles_and_draws_one_outline_per_ln(station: Station) -> None:
    page = station.page("paula")
    tiles: list[Response] = []
    page.on("response", lambda r: tiles.append(r) if "/tiles_files/" in r.url else None)
    station.open_study(page)
    lns = _slide_lns(station.result(), station.slide_id)
    assert lns, "the synthetic slide has no LN: nothing to review"

    expect(page.locator("body")).to_have_attribute("data-outlines", str(len(lns)))
    assert page.evaluate("document.querySelectorAll('#lns li').length") == len(lns)
    page.wait_for_function("document.querySelectorAll('.openseadragon-canvas canvas').length > 0")
    page.wait_for_timeout(1500)  # let the visible tiles arrive
    assert tiles and all(r.status == 200 for r in tiles), [
        (r.status, r.url) for r in tiles if r.status != 200
    ]
    assert all(r.headers["content-type"] == "image/jpeg" for r in tiles)
    expect(page.locator("#scalebar-label")).to_have_text(re.compile(r"^[0-9.]+ mm$"))
    expect(page.locator(".navigator")).to_be_visible()  # the minimap

    # Keyboard: `n` walks the LNs from the highest score down.
    ranked = sorted(lns, key=lambda n: (-(n["score"] if n["score"] is not None else -1), n["index"]))
    page.locator("#viewer").click(position={"x": 5, "y": 5})
    page.keyboard.press("n")
    expect(page.locator("#edit-title")).to_have_text(f"LN {ranked[0]['index']}")
    if len(ranked) > 1:
        page.keyboard.press("n")
        expect(page.locator("#edit-title")).to_have_text(f"LN {ranked[1]['index']}")
        page.keyboard.press("p")
        expect(page.locator("#edit-title")).to_have_text(f"LN {ranked[0]['index']}")

    # The CAM heatmap of the top LN, toggled on over the slide.
    item = page.locator(f"#lns li[data-ln-id='{ranked[0]['ln_id']}']")
    item.locator(".toggle-heatmap").check()
    heatmap = page.locator(".heatmap-overlay")
    expect(heatmap).to_have_count(1)
    page.wait_for_function("document.querySelector('.heatmap-overlay').naturalWidth > 0")
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "viewer.png"))
    item.locator(".toggle-heatmap").uncheck()
    expect(heatmap).to_have_count(0)
    page.context.close()


def test_a_viewer_account_sees_results_but_cannot_edit(station: Station) -> None:
    page = station.page("vera")
    station.open_study(page)
    audits = station.count(AuditEntry)
    page.locator("#lns li .ln-name").first.click()
    expect(page.locator("#editor")).to_be_visible()
    expect(page.locator("#edit-readonly")).to_be_visible()
    for control in ("#save-label", "#remove-ln", "#draw-box", "#sign-out-report"):
        expect(page.locator(control)).to_be_hidden()
    # Even a change sent by hand from the page (with the session's CSRF token) is refused.
    ln_id = _slide_lns(station.result(), station.slide_id)[0]["ln_id"]
    status = page.evaluate(
        """async (lnId) => {
            const me = await (await fetch('/ui/session')).json();
            const answer = await fetch(`/lymph-nodes/${lnId}/label`, {
                method: 'PUT', headers: {'Content-Type': 'application/json', 'X-CSRF-Token': me.csrf_token},
                body: JSON.stringify({label: 'positive', reason: 'viewer tries'})});
            return answer.status;
        }""",
        ln_id,
    )
    assert status == 403 and station.count(AuditEntry) == audits
    page.context.close()


def test_relabelling_updates_the_counts_audit_and_report_and_a_second_session_live(station: Station) -> None:
    watcher = station.page("petra")
    station.open_study(watcher)
    expect(watcher.locator("#live-status")).to_have_text("live")
    page = station.page("paula")
    station.open_study(page)

    before = station.result()
    node = min(
        (n for n in _slide_lns(before, station.slide_id) if n["label"] == "negative"),
        key=lambda n: n["score"],
        default=None,
    )
    assert node is not None, "the synthetic slide has no negative LN to relabel"
    audits, versions = station.count(AuditEntry), station.count(StudyReport)
    positive = _count(page, "positive", "study")
    assert positive == str(before["positive"])

    page.locator(f"#lns li[data-ln-id='{node['ln_id']}'] .ln-name").click()
    expect(page.locator("#edit-title")).to_have_text(f"LN {node['index']}")
    page.fill("#edit-reason", "tumour seen on review")
    page.select_option("#edit-label", "positive")
    page.click("#save-label")
    expect(page.locator("#edit-message")).to_contain_text("Saved (relabel)")

    expect(page.locator("#counts-table tr[data-count=positive] td.study-count")).to_have_text(
        str(before["positive"] + 1)
    )
    expect(page.locator("#counts-table tr[data-count=negative] td.slide-count")).to_have_text(
        str(next(s for s in before["slides"] if s["slide_id"] == station.slide_id)["negative"] - 1)
    )
    assert station.count(AuditEntry) == audits + 1
    assert station.count(StudyReport) == versions + 1
    after = station.result()
    changed = next(n for n in _slide_lns(after, station.slide_id) if n["ln_id"] == node["ln_id"])
    assert changed["label"] == "positive" and changed["reviewed"]
    expect(page.locator(f"#lns li[data-ln-id='{node['ln_id']}'] .source")).to_have_text("confirmed")

    # The other pathologist's page follows without a reload.
    expect(watcher.locator("#counts-table tr[data-count=positive] td.study-count")).to_have_text(
        str(before["positive"] + 1), timeout=15_000
    )
    assert int(watcher.evaluate("document.body.dataset.liveUpdates || '0'")) >= 1
    watcher.context.close()
    page.context.close()


def test_moving_an_outline_vertex_saves_the_new_contour(station: Station) -> None:
    page = station.page("paula")
    station.open_study(page)
    node = max(_slide_lns(station.result(), station.slide_id), key=lambda n: n["index"])
    page.locator(f"#lns li[data-ln-id='{node['ln_id']}'] .ln-name").click()
    handle = page.locator(".a9s-handle").first
    expect(handle).to_be_visible(timeout=10_000)
    page.wait_for_timeout(800)  # the zoom to the LN has settled
    box = handle.bounding_box()
    assert box is not None
    _drag(page, box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, 25, 15)
    expect(page.locator("#save-outline")).to_be_enabled()
    page.fill("#edit-reason", "outline follows the capsule")
    page.click("#save-outline")
    expect(page.locator("#edit-message")).to_contain_text("Saved (outline)")
    with station.sessions() as session:
        stored = session.get(LymphNode, node["ln_id"])
        assert stored is not None and stored.review_contour is not None
        assert stored.review_contour != stored.contour and stored.reviewed_by == "paula"
    page.context.close()


def test_drawing_a_new_ln_adds_one(station: Station) -> None:
    page = station.page("paula")
    station.open_study(page)
    outlines = int(page.locator("body").get_attribute("data-outlines") or "0")
    with station.sessions() as session:
        stored = session.scalar(
            select(func.count()).where(LymphNode.slide_id == station.slide_id, LymphNode.removed.is_(False))
        )

    page.click("#draw-box")
    box = page.locator("#viewer").bounding_box()
    assert box is not None
    _drag(page, box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.45, 60, 50)
    expect(page.locator("#new-ln")).to_be_visible()
    page.fill("#new-ln-reason", "node missed by the detector")
    page.select_option("#new-ln-label", "negative")
    page.click("#add-ln")
    expect(page.locator("#edit-message")).to_contain_text("Saved (add)")
    expect(page.locator("body")).to_have_attribute("data-outlines", str(outlines + 1))
    with station.sessions() as session:
        nodes = session.scalars(
            select(LymphNode).where(LymphNode.slide_id == station.slide_id, LymphNode.removed.is_(False))
        ).all()
    assert len(nodes) == (stored or 0) + 1
    added = [n for n in nodes if n.added_by_review]
    assert len(added) == 1 and added[0].reviewed_by == "paula"
    page.context.close()


def test_sign_out_shows_the_hospitals_summary_then_makes_the_report_final(station: Station) -> None:
    page = station.page("paula")
    station.open_study(page)
    with httpx.Client(
        base_url=station.url, headers={"Authorization": f"Bearer {station.tokens['paula']}"}
    ) as api:
        preview = api.get(f"/studies/{STUDY}/sign-out-preview").json()
    page.click("#sign-out-report")
    dialog = page.locator("#sign-out-dialog")
    expect(dialog).to_be_visible()
    expect(page.locator("#preview-conclusion")).to_have_text(preview["conclusion"])
    expect(page.locator("#preview-text")).to_contain_text(f"accession {STUDY}")
    expect(page.locator("#preview-text")).to_contain_text("Dr Paula")
    page.screenshot(path=str(ARTIFACTS / "sign-out.png"))
    page.fill("#sign-out-reason", "agreed")
    page.click("#confirm-sign-out")
    expect(dialog).to_be_hidden()
    expect(page.locator("body")).to_have_attribute("data-report-status", "final")
    expect(page.locator("#sign-out-report")).to_be_disabled()
    result = station.result()
    assert result["status"] == "final" and result["signed_out_by"] == "paula"
    assert result["report_version"] == preview["final_version"]
    page.context.close()
