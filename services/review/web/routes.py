"""The workstation's HTTP routes: sign-in sessions and what the viewer reads (worklist, slide data,
deep-zoom tiles, heatmaps, occlusion maps). Amendments and sign-out go through the review API's own
routes, with the session cookie and CSRF header instead of a bearer token.

No `from __future__ import annotations` here: the routes' annotations name a dependency made inside
`workstation_router`, which FastAPI can only see when they are evaluated where they are written."""

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from pathstream.services.review.auth import Authenticator, Principal
from pathstream.services.review.http_errors import Unauthorised
from pathstream.services.review.web.live import study_events, study_pulse
from pathstream.services.review.web.sessions import COOKIE_NAME, BrowserSessions, SessionUser
from pathstream.services.review.web.slide_view import heatmap_path, occlusion_path, slide_view
from pathstream.services.review.web.tiles import CACHE_CONTROL, SlideTiles
from pathstream.services.review.web.worklist import MAX_ROWS, STATUSES, worklist
from pathstream.shared.errors import ErrorCode, PathStreamError

API_BASE = "/ui/api"


class SignIn(BaseModel):
    """A sign-in with an issued review token (sent in the body, never in a URL)."""

    model_config = ConfigDict(extra="forbid")
    token: str = Field(min_length=1, max_length=200)


class SignedIn(BaseModel):
    """Who is signed in, and the CSRF token every change must carry in `X-CSRF-Token`."""

    user_id: str
    display_name: str
    role: str
    may_amend: bool
    csrf_token: str
    expires_at: str


@dataclass(frozen=True)
class Workstation:
    """What the workstation's routes read from: sessions, tiles, and where heatmaps may lie.
    `cookie_secure=False` only for plain-HTTP development without the hospital's TLS proxy."""

    browser_sessions: BrowserSessions
    tiles: SlideTiles
    artifact_roots: list[str]
    cookie_secure: bool = True
    live_poll_s: float = 1.0


def workstation_router(authenticator: Authenticator, workstation: Workstation, principal: Any) -> APIRouter:
    """The routes above; `principal` is the API's dependency resolving the caller (token or session)."""
    browser_sessions, tiles = workstation.browser_sessions, workstation.tiles
    artifact_roots, cookie_secure = workstation.artifact_roots, workstation.cookie_secure
    router = APIRouter(tags=["workstation"])
    sessions = browser_sessions.sessions
    User = Annotated[Principal, Depends(principal)]

    @router.post("/ui/session", summary="Sign in with a review token; sets the session cookie")
    def sign_in(body: SignIn, response: Response) -> SignedIn:
        found = authenticator.authenticate(body.token.strip())
        if found is None:
            raise Unauthorised("The token is unknown, revoked or expired, or its user is disabled.")
        opened = browser_sessions.open(found)
        response.set_cookie(
            COOKIE_NAME,
            opened.cookie,
            expires=opened.expires_at,
            path="/",
            secure=cookie_secure,
            httponly=True,
            samesite="strict",
        )
        resolved = browser_sessions.resolve(opened.cookie)
        assert resolved is not None
        return _signed_in(resolved)

    @router.get("/ui/session", summary="The signed-in user of this browser session")
    def current_session(request: Request) -> SignedIn:
        resolved = browser_sessions.resolve(request.cookies.get(COOKIE_NAME, ""))
        if resolved is None:
            raise Unauthorised("Not signed in.")
        return _signed_in(resolved)

    @router.delete("/ui/session", summary="Sign out of the workstation", status_code=204)
    def sign_out_of_session(request: Request, _: User) -> Response:
        browser_sessions.close(request.cookies.get(COOKIE_NAME, ""))
        response = Response(status_code=204)
        response.delete_cookie(COOKIE_NAME, path="/", secure=cookie_secure, httponly=True, samesite="strict")
        return response

    @router.get(f"{API_BASE}/worklist", summary="Studies with status, counts, pN, flags and age")
    def get_worklist(
        _: User,
        status: Annotated[str | None, Query(description=f"one of {', '.join(STATUSES)}")] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_ROWS)] = 200,
    ) -> list[dict[str, Any]]:
        if status is not None and status not in STATUSES:
            raise PathStreamError(
                ErrorCode.INVALID_AMENDMENT,
                f"Unknown status {status!r}.",
                hint=f"Use one of {', '.join(STATUSES)}.",
            )
        return worklist(sessions, status, limit)

    @router.get(
        f"{API_BASE}/studies/{{study_id}}/events",
        summary="Live updates of a study (Server-Sent Events: `study` events with its pulse)",
        response_class=StreamingResponse,
    )
    def get_study_events(study_id: str, request: Request, _: User) -> StreamingResponse:
        study_pulse(sessions, study_id)  # 404 now for an unknown study, not an empty stream
        events = study_events(
            lambda: study_pulse(sessions, study_id), request.is_disconnected, workstation.live_poll_s
        )
        # no-store and no proxy buffering: each event must reach the page when it happens.
        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(events, media_type="text/event-stream", headers=headers)

    @router.get(f"{API_BASE}/slides/{{slide_id}}/view", summary="What the slide viewer draws")
    def get_slide_view(slide_id: str, _: User) -> dict[str, Any]:
        return slide_view(sessions, slide_id, API_BASE)

    @router.get(f"{API_BASE}/slides/{{slide_id}}/tiles.dzi", summary="Deep Zoom descriptor of the slide")
    def get_dzi(slide_id: str, _: User) -> Response:
        return Response(
            tiles.dzi(slide_id), media_type="application/xml", headers={"Cache-Control": CACHE_CONTROL}
        )

    @router.get(
        f"{API_BASE}/slides/{{slide_id}}/tiles_files/{{level}}/{{col}}_{{row}}.jpeg",
        summary="One 256-px deep-zoom tile (JPEG)",
        response_class=Response,
    )
    def get_tile(slide_id: str, level: int, col: int, row: int, request: Request, _: User) -> Response:
        etag = tiles.etag(slide_id, level, col, row)
        headers = {"Cache-Control": CACHE_CONTROL, "ETag": etag}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        tile = tiles.tile(slide_id, level, col, row)
        return Response(tile.jpeg, media_type="image/jpeg", headers=headers)

    @router.get(f"{API_BASE}/lymph-nodes/{{ln_id}}/heatmap.png", summary="The LN's CAM heatmap (PNG)")
    def get_heatmap(ln_id: str, _: User) -> FileResponse:
        path = heatmap_path(sessions, ln_id, artifact_roots)
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})

    @router.get(
        f"{API_BASE}/slides/{{slide_id}}/rois/{{index}}/occlusion.png", summary="A smear ROI's occlusion map"
    )
    def get_occlusion(slide_id: str, index: int, _: User) -> FileResponse:
        path = occlusion_path(sessions, slide_id, index, artifact_roots)
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})

    return router


def _signed_in(resolved: SessionUser) -> SignedIn:
    return SignedIn(
        user_id=resolved.principal.user_id,
        display_name=resolved.display_name,
        role=resolved.principal.role.value,
        may_amend=resolved.principal.may_amend,
        csrf_token=resolved.csrf_token,
        expires_at=resolved.expires_at.isoformat(),
    )
