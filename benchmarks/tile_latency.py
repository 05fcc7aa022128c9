"""Latency of the workstation's 256-px deep-zoom tiles over real HTTP: cold, warm and revalidated.

The review service (uvicorn on loopback, SQLite, a signed-in session cookie) serves tiles of real
slides from the original files with OpenSlide's DeepZoomGenerator. The same random tiles of the
three most detailed levels (what a pathologist zoomed in on a slide asks for) are requested:

- cold: by a freshly started service, each tile once (its descriptor request, timed apart, opened
  the slide);
- warm: the same tiles again (slide handle open, the file's pages in the OS cache);
- revalidated: again with the tile's ETag in If-None-Match, as a browser does after max-age (304).

    .venv/bin/python benchmarks/tile_latency.py [--tiles 200]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import emit, quiet_logs
from pathstream.services.reporter.handler import ReporterHandler
from pathstream.services.review.amendments import Review
from pathstream.services.review.api import build_api
from pathstream.services.review.auth import DatabaseTokens
from pathstream.services.review.web.routes import Workstation
from pathstream.services.review.web.sessions import BrowserSessions
from pathstream.services.review.web.tiles import SlideTiles
from pathstream.shared.db import migrate
from pathstream.shared.db.engine import create_db_engine, session_factory
from pathstream.shared.db.models import Role
from pathstream.shared.settings import PathStreamSettings
from tests.integration.served_app import served
from tests.real_data import real_data_dir
from tests.samples import slide_scanned

SLIDES = ("CMU-1-Small-Region.svs", "tcga-cr-7395-01a-01-ts1.svs")


def _summary(times_ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(statistics.median(times_ms), 2),
        "p95_ms": round(float(np.percentile(times_ms, 95)), 2),
        "mean_ms": round(statistics.fmean(times_ms), 2),
    }


def _tiles(client: httpx.Client, slide_id: str, count: int) -> list[str]:
    """`count` random tile paths of the slide's three most detailed deep-zoom levels."""
    base = f"/ui/api/slides/{slide_id}"
    image = ET.fromstring(client.get(f"{base}/tiles.dzi").content)
    size = next(e for e in image if e.tag.endswith("Size"))
    width, height, tile = (
        int(size.get("Width", 0)),
        int(size.get("Height", 0)),
        int(image.get("TileSize", 254)),
    )
    top = int(np.ceil(np.log2(max(width, height))))
    candidates = []
    for level in range(top - 2, top + 1):
        scale = 2 ** (top - level)
        cols, rows = -(-int(np.ceil(width / scale)) // tile), -(-int(np.ceil(height / scale)) // tile)
        candidates += [f"{base}/tiles_files/{level}/{c}_{r}.jpeg" for c in range(cols) for r in range(rows)]
    return random.Random(0).sample(candidates, min(count, len(candidates)))


def _timed(client: httpx.Client, paths: list[str], etags: dict[str, str] | None = None) -> list[float]:
    times = []
    for path in paths:
        headers = {"If-None-Match": etags[path]} if etags else {}
        started = time.perf_counter()
        answer = client.get(path, headers=headers)
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == (304 if etags else 200), (answer.status_code, path)
    return times


def measure(tiles: int) -> dict[str, Any]:
    real = real_data_dir() / "wsi"
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as work:
        url = f"sqlite:///{Path(work) / 'review.db'}"
        migrate.upgrade(url)
        engine = create_db_engine(url)
        sessions = session_factory(engine)
        reporter = ReporterHandler(PathStreamSettings(data_dir=Path(work)), sessions)
        for index, name in enumerate(SLIDES):
            reporter.handle(
                slide_scanned(f"S-{index}", f"ST-{index}").model_copy(update={"uri": str(real / name)})
            )
        tokens = DatabaseTokens(sessions)
        tokens.add_user("bench", Role.VIEWER)
        token = tokens.issue("bench").token
        for index, name in enumerate(SLIDES):
            # A fresh service per slide: nothing of an earlier slide is open or cached in it.
            workstation = Workstation(
                BrowserSessions(sessions, timedelta(hours=1)),
                SlideTiles(sessions, [str(real)]),
                [],
                cookie_secure=False,
            )
            app = build_api(Review(sessions), tokens, workstation=workstation)
            with served(app) as base, httpx.Client(base_url=base, timeout=60) as client:
                client.post("/ui/session", json={"token": token}).raise_for_status()
                started = time.perf_counter()
                paths = _tiles(client, f"S-{index}", tiles)  # the descriptor opens the slide
                open_ms = (time.perf_counter() - started) * 1000
                cold = _timed(client, paths)
                warm = _timed(client, paths)
                etags = {p: client.get(p).headers["etag"] for p in paths}
                revalidated = _timed(client, paths, etags)
            workstation.tiles.close()
            results[name] = {
                "tiles": len(paths),
                "open_and_descriptor_ms": round(open_ms, 1),
                "cold": _summary(cold),
                "warm": _summary(warm),
                "revalidated_304": _summary(revalidated),
                "warm_over_cold_p50": round(statistics.median(warm) / statistics.median(cold), 3),
            }
        engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiles", type=int, default=200)
    args = parser.parse_args()
    quiet_logs()
    emit({"benchmark": "tile_latency", "tile_px": 256, "slides": measure(args.tiles)})


if __name__ == "__main__":
    main()
