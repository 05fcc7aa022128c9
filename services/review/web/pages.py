"""The workstation's pages (`/ui/`: sign-in and worklist; `/ui/study`: the slide viewer) and their
bundled scripts, styles and images, built from `services/review/frontend` into `web/static` by
`infra/local/install.sh` (npm registry at install time; nothing from a CDN at run time)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from pathstream.services.review.web.security import VIEWER_PAGE_POLICY

STATIC_DIR = Path(__file__).resolve().parent / "static"
# Pages and bundles revalidate (ETag / Last-Modified) so a rebuilt workstation is picked up at once.
_REVALIDATE = {"Cache-Control": "no-cache"}


class _RevalidatedFiles(StaticFiles):
    def file_response(self, *args: object, **kwargs: object) -> Response:
        response = super().file_response(*args, **kwargs)  # type: ignore[arg-type]
        response.headers.update(_REVALIDATE)
        return response


def _not_built(static_dir: Path) -> JSONResponse:
    return JSONResponse(
        {
            "error": "WORKSTATION_NOT_BUILT",
            "message": f"The workstation's pages are not built ({static_dir} is missing).",
            "hint": "Run infra/local/install.sh (it needs Node.js and npm) and restart the review service.",
        },
        status_code=503,
    )


def mount_pages(app: FastAPI, static_dir: Path = STATIC_DIR) -> None:
    """Serve the built workstation under /ui/ on `app`; a clear 503 when it was never built."""

    def page(name: str, headers: dict[str, str]) -> Response:
        path = static_dir / name
        if not path.is_file():
            return _not_built(static_dir)
        return FileResponse(path, media_type="text/html", headers=headers)

    @app.get("/ui", include_in_schema=False)
    def ui_root() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=308)

    @app.get("/ui/", include_in_schema=False)
    def worklist_page() -> Response:
        return page("index.html", _REVALIDATE)

    @app.get("/ui/study", include_in_schema=False)
    def study_page() -> Response:
        return page("study.html", {**_REVALIDATE, "Content-Security-Policy": VIEWER_PAGE_POLICY})

    app.mount(
        "/ui/assets", _RevalidatedFiles(directory=static_dir / "assets", check_dir=False), name="ui-assets"
    )
