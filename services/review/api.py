"""The pathologist review API (FastAPI): read studies, amend LNs, export and import QuPath GeoJSON.

Every route, the OpenAPI document included, needs `Authorization: Bearer <token>` (or the browser
workstation's session cookie, with its CSRF header for changes); `viewer` tokens
read, `pathologist` tokens also amend. The audit trail records the authenticated user, never a
field of the request. Invalid input gets a 4xx naming the problem and changes nothing: 401 without
a valid token, 403 for a viewer amending, 404 for an unknown study / slide / LN, 409 for a sign-out
that is not possible yet (or twice), an order that contradicts the stored one, and an edit or
sign-out whose `expected_revision` / `expected_report_version` is no longer current (EDIT_CONFLICT:
another pathologist changed it first; nothing is overwritten), 413 for a body
over `PATHSTREAM_API_MAX_BODY_BYTES`, 422 for a malformed or self-intersecting contour, a missing
reason or an invalid order. `POST /orders` takes a FHIR R4 ServiceRequest (laboratory or
pathologist tokens); `POST /studies/{id}/sign-out` makes the report final, signed by the caller.

`pathstream serve api` runs it with uvicorn; put it behind the hospital's TLS-terminating proxy.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pathstream.services.reporter.orders.fhir_orders import parse_service_request
from pathstream.services.reporter.orders.intake import OrderIntake
from pathstream.services.review.amendments import MAX_DEPOSIT_MM, MAX_REASON_CHARS, Amendment, Review
from pathstream.services.review.auth import Authenticator, Principal
from pathstream.services.review.http_errors import CsrfRefused, Unauthorised
from pathstream.services.review.web.pages import mount_pages
from pathstream.services.review.web.routes import Workstation, workstation_router
from pathstream.services.review.web.security import SecurityHeaders
from pathstream.services.review.web.sessions import COOKIE_NAME, CSRF_HEADER, BrowserSessions
from pathstream.shared.errors import ErrorCode, PathStreamError
from pathstream.shared.events import SCHEMA_VERSION, LnLabel
from pathstream.shared.events.base import MAX_CONTOUR_POINTS
from pathstream.shared.logs import get_logger

log = get_logger(__name__)

_STATUS = {
    ErrorCode.UNKNOWN_ENTITY: 404,
    ErrorCode.INVALID_AMENDMENT: 422,
    ErrorCode.INVALID_ORDER: 422,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.OUTSIDE_ALLOWED_ROOTS: 403,
    ErrorCode.SIGN_OUT_REFUSED: 409,
    ErrorCode.EDIT_CONFLICT: 409,
    ErrorCode.ORDER_CONFLICT: 409,
}

Reason = Annotated[
    str, Field(min_length=1, max_length=MAX_REASON_CHARS, description="Why; kept in the audit trail.")
]
Ring = Annotated[
    list[Annotated[list[float], Field(min_length=2, max_length=2)]],
    Field(min_length=3, max_length=MAX_CONTOUR_POINTS, description="Level-0 pixel vertices [[x, y], ...]."),
]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _LnEdit(_Body):
    expected_revision: int | None = Field(
        default=None,
        ge=0,
        description="The LN's `revision` as the editor last saw it (slide view); 409 EDIT_CONFLICT "
        "when someone changed the LN since. Omitted: the change applies to whatever is current.",
    )


class LabelChange(_LnEdit):
    """A new metastasis call for one LN."""

    label: LnLabel
    reason: Reason


class ContourChange(_LnEdit):
    """A new outline for one LN."""

    contour: Ring
    reason: Reason


class NewLymphNode(_Body):
    """An LN the detector missed."""

    contour: Ring
    label: LnLabel
    reason: Reason


class Removal(_LnEdit):
    """Why an LN is removed."""

    reason: Reason


class DepositSize(_LnEdit):
    """The largest dimension of the LN's largest tumour deposit, measured by the pathologist."""

    deposit_mm: float | None = Field(
        ge=0,
        le=MAX_DEPOSIT_MM,
        description="Millimetres (ITC < 0.2, micro 0.2-2, macro > 2); null clears it.",
    )
    reason: Reason


class SignOut(_Body):
    """Sign-out of a study's report (it becomes final)."""

    reason: str | None = Field(default=None, max_length=MAX_REASON_CHARS, description="Optional remark.")
    expected_report_version: int | None = Field(
        default=None,
        ge=1,
        description="The version whose summary the signer saw; 409 when it is not the latest.",
    )


class OrderReceived(BaseModel):
    """What posting an order did."""

    study_id: str
    changed: bool
    report_version: int | None


class GeoJsonImport(_Body):
    """A QuPath-edited export of the slide, applied as amendments."""

    geojson: dict[str, Any] = Field(description="FeatureCollection as PathStream exported it, edited.")
    reason: Reason


class AmendmentResult(BaseModel):
    """What changed and the report version it produced (None when nothing changed)."""

    study_id: str
    ln_ids: list[str]
    actions: list[str]
    report_version: int | None

    @classmethod
    def of(cls, amendment: Amendment) -> AmendmentResult:
        """The response body for `amendment`."""
        return cls(
            study_id=amendment.study_id,
            ln_ids=list(amendment.ln_ids),
            actions=list(amendment.actions),
            report_version=amendment.report_version,
        )


class BodyLimit:
    """ASGI middleware: refuse request bodies over `limit` bytes with 413, declared or streamed."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._too_large(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = JSONResponse(
            {"error": "PAYLOAD_TOO_LARGE", "message": f"The request body exceeds {self.limit} bytes."},
            status_code=413,
        )
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


_bearer = HTTPBearer(auto_error=False)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def current_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    """The authenticated caller of a request: by bearer token (the app's `Authenticator`), or by the
    workstation's session cookie, whose changes must also carry the session's CSRF token and come
    from the service's own origin; 401 / 403 otherwise."""
    if credentials is not None:
        authenticator: Authenticator = request.app.state.authenticator
        found = authenticator.authenticate(credentials.credentials)
        if found is None:
            raise Unauthorised("The token is unknown, revoked or expired, or its user is disabled.")
        return found
    browser_sessions: BrowserSessions | None = request.app.state.browser_sessions
    cookie = request.cookies.get(COOKIE_NAME)
    if browser_sessions is None or cookie is None:
        raise Unauthorised("No bearer token was sent.")
    session = browser_sessions.resolve(cookie)
    if session is None:
        raise Unauthorised("The session has ended or expired; sign in again.")
    if request.method not in _SAFE_METHODS:
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            raise CsrfRefused(f"A change from another site ({origin[:100]}) is refused.")
        if not session.csrf_matches(request.headers.get(CSRF_HEADER)):
            raise CsrfRefused(f"A change needs the session's {CSRF_HEADER} header.")
    return session.principal


User = Annotated[Principal, Depends(current_principal)]


def build_api(
    review: Review,
    authenticator: Authenticator,
    max_body_bytes: int = 5_000_000,
    intake: OrderIntake | None = None,
    workstation: Workstation | None = None,
) -> FastAPI:
    """The review API over `review`, authenticating with `authenticator`; `intake` stores the orders
    posted to `/orders` (None: the route answers that this API takes no orders); `workstation` adds
    the browser workstation's sessions, tiles and viewer data (None: bearer tokens only)."""
    app = FastAPI(
        title="PathStream review API",
        version=SCHEMA_VERSION,
        description=__doc__,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,  # served below, behind authentication
    )
    app.state.authenticator = authenticator
    app.state.browser_sessions = None if workstation is None else workstation.browser_sessions
    if workstation is not None:
        app.include_router(workstation_router(authenticator, workstation, current_principal))
        mount_pages(app)

    @app.exception_handler(Unauthorised)
    async def unauthorised(_: Request, exc: Unauthorised) -> JSONResponse:
        return JSONResponse(
            {"error": "UNAUTHORISED", "message": str(exc), "hint": "Send Authorization: Bearer <token>."},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    @app.exception_handler(CsrfRefused)
    async def csrf_refused(_: Request, exc: CsrfRefused) -> JSONResponse:
        return JSONResponse(
            {"error": "CSRF_REFUSED", "message": str(exc), "hint": "Reload the workstation and try again."},
            status_code=403,
        )

    @app.exception_handler(PathStreamError)
    async def refused(_: Request, exc: PathStreamError) -> JSONResponse:
        status = _STATUS.get(exc.code)
        if status is None:
            log.error("api_error", error_code=exc.code.value, error=exc.message)
            status = 503 if exc.retriable else 500
        return JSONResponse({"error": exc.code.value, "message": exc.message, "hint": exc.hint}, status)

    @app.get("/openapi.json", include_in_schema=False)
    def openapi(_: User) -> dict[str, Any]:
        return app.openapi()

    @app.get("/studies/{study_id}", summary="A study's slides and LNs with scores and labels")
    def get_study(study_id: str, _: User) -> dict[str, Any]:
        return review.study(study_id)

    @app.get("/studies/{study_id}/audit", summary="The study's audit trail")
    def get_audit(study_id: str, _: User) -> list[dict[str, Any]]:
        return review.audit(study_id)

    @app.get("/slides/{slide_id}/geojson", summary="The slide's LNs as QuPath-importable GeoJSON")
    def get_geojson(slide_id: str, _: User) -> dict[str, Any]:
        return review.slide_geojson(slide_id)

    @app.post("/slides/{slide_id}/geojson", summary="Import a QuPath-edited GeoJSON as amendments")
    def post_geojson(slide_id: str, body: GeoJsonImport, user: User) -> AmendmentResult:
        return AmendmentResult.of(review.import_geojson(user, slide_id, body.geojson, body.reason))

    @app.put("/lymph-nodes/{ln_id}/label", summary="Change an LN's label")
    def put_label(ln_id: str, body: LabelChange, user: User) -> AmendmentResult:
        return AmendmentResult.of(
            review.set_label(user, ln_id, body.label, body.reason, body.expected_revision)
        )

    @app.put("/lymph-nodes/{ln_id}/contour", summary="Edit an LN's contour")
    def put_contour(ln_id: str, body: ContourChange, user: User) -> AmendmentResult:
        return AmendmentResult.of(
            review.set_contour(user, ln_id, body.contour, body.reason, body.expected_revision)
        )

    @app.post("/slides/{slide_id}/lymph-nodes", summary="Add an LN the detector missed", status_code=201)
    def post_lymph_node(slide_id: str, body: NewLymphNode, user: User) -> AmendmentResult:
        amendment = review.add_lymph_node(user, slide_id, body.contour, body.label, body.reason)
        return AmendmentResult.of(amendment)

    @app.post("/lymph-nodes/{ln_id}/remove", summary="Remove an LN")
    def remove_lymph_node(ln_id: str, body: Removal, user: User) -> AmendmentResult:
        return AmendmentResult.of(review.remove_lymph_node(user, ln_id, body.reason, body.expected_revision))

    @app.put("/lymph-nodes/{ln_id}/deposit-size", summary="Set an LN's largest deposit size (mm)")
    def put_deposit_size(ln_id: str, body: DepositSize, user: User) -> AmendmentResult:
        return AmendmentResult.of(
            review.set_deposit_size(user, ln_id, body.deposit_mm, body.reason, body.expected_revision)
        )

    @app.get("/studies/{study_id}/sign-out-preview", summary="The final report a sign-out would issue now")
    def get_sign_out_preview(study_id: str, user: User) -> dict[str, Any]:
        return review.sign_out_preview(user, study_id)

    @app.post("/studies/{study_id}/sign-out", summary="Sign the study's report out (final)")
    def post_sign_out(study_id: str, body: SignOut, user: User) -> AmendmentResult:
        return AmendmentResult.of(review.sign_out(user, study_id, body.reason, body.expected_report_version))

    @app.post(
        "/orders",
        summary="Open a study from the laboratory's order (FHIR R4 ServiceRequest)",
        status_code=201,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/fhir+json": {"schema": {"type": "object"}},
                    "application/json": {"schema": {"type": "object"}},
                },
            }
        },
    )
    async def post_order(request: Request, user: User) -> OrderReceived:
        if intake is None:
            raise PathStreamError(ErrorCode.INVALID_CONFIGURATION, "This API does not take orders.")
        if not user.may_order:
            raise PathStreamError(
                ErrorCode.FORBIDDEN,
                f"User {user.user_id} ({user.role.value}) may not post orders.",
                hint="Orders come from the laboratory's integration account (role laboratory).",
            )
        try:
            document = json.loads(await request.body())
        except ValueError as exc:
            raise PathStreamError(
                ErrorCode.INVALID_ORDER, f"The body is not JSON: {exc}.", hint="Send a ServiceRequest."
            ) from None
        order = parse_service_request(document)
        receipt = await asyncio.to_thread(intake.receive, order)
        return OrderReceived(
            study_id=receipt.study_id, changed=receipt.changed, report_version=receipt.report_version
        )

    app.add_middleware(BodyLimit, limit=max_body_bytes)
    app.add_middleware(SecurityHeaders)
    return app
