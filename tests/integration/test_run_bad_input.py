"""`pathstream run` fed what users feed it: every kind of bad input ends in exit status 2, the right
error code, no traceback, nothing half-written, and a database that still runs a good slide.

All cases share one data folder (SQLite database and tile stores), in the order below, after a
good slide has completed in it: a bad input must not damage what is already there.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import openslide
import pytest
import tiledb
from sqlalchemy import select

from pathstream.services.demo.cohort import write_demo_study
from pathstream.services.demo.run import MARROW_CHECKPOINT
from pathstream.services.reporter.study_view import study_result
from pathstream.shared.db.engine import create_db_engine, session_factory
from pathstream.shared.db.models import Study
from pathstream.shared.errors import ErrorCode
from pathstream.shared.tilestore.layout import MetaKey
from pathstream.shared.tilestore.reader import read_store_meta
from tests.bad_slides import huge_header_tiff, restained, tiled_tiff
from tests.conftest import SHARED_DATA
from tests.integration.cli_runs import demo_model_env, pathstream_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

WSI = SHARED_DATA / "wsi"
SVS = WSI / "CMU-1-Small-Region.svs"
DICOM = WSI / "CMU-1-Small-Region_dicom_FALSECOLOUR"
DAB = (0.268, 0.570, 0.776)


@dataclass
class Workspace:
    """The shared data folder, the good slides and a scratch folder per case."""

    root: Path
    data: Path
    first_good: Path
    second_good: Path
    env: dict[str, str]

    def scratch(self, name: str) -> Path:
        folder = self.root / "cases" / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder


@dataclass(frozen=True)
class BadInput:
    """One kind of bad input: how to make the command line, and the error code it must end in."""

    name: str
    make: Callable[[Workspace, Path], list[str]]
    """(workspace, scratch folder) -> the arguments after `run` (without --out)."""
    code: ErrorCode
    env: dict[str, str] = field(default_factory=dict)
    limit_file_bytes: int | None = None
    """RLIMIT_FSIZE for the run: writes past it fail as on a full disk (EFBIG)."""


def _copy(source: Path, folder: Path, name: str) -> list[str]:
    target = folder / name
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        shutil.copyfile(source, target)
    return [str(target)]


def _text(folder: Path, name: str, content: str) -> Path:
    (folder / name).write_text(content)
    return folder / name


def _bytes(folder: Path, name: str, data: bytes) -> list[str]:
    (folder / name).write_bytes(data)
    return [str(folder / name)]


def _cut(folder: Path, keep: float) -> list[str]:
    data = SVS.read_bytes()
    return _bytes(folder, "truncated.svs", data[: int(len(data) * keep)])


def _damaged(folder: Path) -> list[str]:
    data = bytearray(SVS.read_bytes())
    data[300_000:900_000] = bytes(600_000)
    return _bytes(folder, "damaged.svs", bytes(data))


def _link(folder: Path, name: str, target: str) -> list[str]:
    (folder / name).symlink_to(target)
    return [str(folder / name)]


def _loop(folder: Path) -> list[str]:
    (folder / "b.svs").symlink_to(folder / "a.svs")
    return _link(folder, "a.svs", str(folder / "b.svs"))


def _dicom_without_level0(folder: Path) -> list[str]:
    (path,) = _copy(DICOM, folder, "S-dicom")
    next(Path(path).glob("level-0-*.dcm")).unlink()
    return [path]


def _dab(folder: Path) -> list[str]:
    with openslide.OpenSlide(str(SVS)) as slide:
        rgb = np.asarray(slide.read_region((0, 0), 0, slide.dimensions).convert("RGB"))
    return [str(tiled_tiff(folder / "dab.tif", restained(rgb, DAB), 0.499))]


def _outside_roots(folder: Path) -> list[str]:
    inbox = folder / "inbox"
    inbox.mkdir()
    (inbox / "linked.svs").symlink_to(SVS)
    return [str(inbox / "linked.svs")]


CASES = [
    BadInput("zero_bytes", lambda w, f: _bytes(f, "empty.svs", b""), ErrorCode.SLIDE_EMPTY),
    BadInput("random_bytes", lambda w, f: _bytes(f, "noise.svs", os.urandom(300_000)), ErrorCode.NOT_A_SLIDE),
    BadInput(
        "text_named_svs", lambda w, f: _bytes(f, "notes.svs", b"slide 17 rescanned\n"), ErrorCode.NOT_A_SLIDE
    ),
    BadInput("truncated_svs", lambda w, f: _cut(f, 0.5), ErrorCode.SLIDE_CORRUPT),
    BadInput("damaged_tiles", lambda w, f: _damaged(f), ErrorCode.SLIDE_CORRUPT),
    BadInput(
        "absurd_mpp_tag",
        lambda w, f: _copy(WSI / "CMU-1-Small-Region.jpeg.tiff", f, "S-tag.tiff"),
        ErrorCode.MPP_ABSURD,
    ),
    BadInput(
        "missing_mpp",
        lambda w, f: _copy(WSI / "tcga-cr-7395-01a-01-ts1.svs", f, "S-tcga.svs"),
        ErrorCode.MPP_MISSING,
    ),
    BadInput(
        "absurd_operator_mpp",
        lambda w, f: [*_copy(SVS, f, "S-op.svs"), "--mpp", "0.001"],
        ErrorCode.MPP_ABSURD,
    ),
    BadInput(
        "scan_too_coarse",
        lambda w, f: [*_copy(SVS, f, "S-coarse.svs"), "--mpp", "1.5"],
        ErrorCode.SCAN_TOO_COARSE,
    ),
    BadInput(
        "terapixel_header", lambda w, f: [str(huge_header_tiff(f / "huge.tif"))], ErrorCode.SLIDE_TOO_LARGE
    ),
    BadInput(
        "fluorescence",
        lambda w, f: _copy(WSI / "test3-DAPI-2-387.ndpi", f, "S-dapi.ndpi"),
        ErrorCode.QC_FAILED,
    ),
    BadInput(
        "fluorescence_as_marrow",
        lambda w, f: [*_copy(WSI / "test3-DAPI-2-387.ndpi", f, "S-dapi-m.ndpi"), "--specimen", "bone_marrow"],
        ErrorCode.QC_FAILED,
        env={"PATHSTREAM_MARROW_CHECKPOINT": str(MARROW_CHECKPOINT)},
    ),
    BadInput("false_colour_dicom", lambda w, f: _copy(DICOM, f, "S-false"), ErrorCode.QC_FAILED),
    BadInput(
        "blank_slide",
        lambda w, f: [str(tiled_tiff(f / "blank.tif", np.full((2048, 3072, 3), 247, np.uint8), 0.25))],
        ErrorCode.QC_FAILED,
    ),
    BadInput("dab_stain", lambda w, f: _dab(f), ErrorCode.QC_FAILED),
    BadInput("missing_file", lambda w, f: [str(f / "nowhere.svs")], ErrorCode.SLIDE_NOT_FOUND),
    BadInput("symlink_loop", lambda w, f: _loop(f), ErrorCode.SLIDE_NOT_FOUND),
    BadInput(
        "dangling_symlink",
        lambda w, f: _link(f, "moved.svs", "/nonexistent/moved.svs"),
        ErrorCode.SLIDE_NOT_FOUND,
    ),
    BadInput(
        "mrxs_without_folder", lambda w, f: _bytes(f, "S-mirax.mrxs", b"[GENERAL]\n"), ErrorCode.NOT_A_SLIDE
    ),
    BadInput("dicom_without_level0", lambda w, f: _dicom_without_level0(f), ErrorCode.SCAN_TOO_COARSE),
    BadInput(
        "folder_without_dicom",
        lambda w, f: [str((f / "S-empty-folder").mkdir() or f / "S-empty-folder")],
        ErrorCode.NOT_A_SLIDE,
    ),
    BadInput(
        "plain_tiff_patch",
        lambda w, f: _copy(
            next((SHARED_DATA / "lymph_node_pcam" / "positive").glob("*.tif")), f, "S-patch.tif"
        ),
        ErrorCode.NOT_A_SLIDE,
    ),
    BadInput(
        "jpeg_cell_image",
        lambda w, f: _copy(SHARED_DATA / "bone_marrow_mll_smear" / "BLA_00001.jpg", f, "S-cell.jpg"),
        ErrorCode.NOT_A_SLIDE,
    ),
    BadInput("cjk_only_name", lambda w, f: _copy(SVS, f, "切片.svs"), ErrorCode.INVALID_CONFIGURATION),
    BadInput(
        "slide_id_count",
        lambda w, f: [*_copy(SVS, f, "S-ids.svs"), "--slide-id", "A", "--slide-id", "B"],
        ErrorCode.INVALID_CONFIGURATION,
    ),
    BadInput(
        "unsafe_study_id",
        lambda w, f: [*_copy(SVS, f, "S-st.svs"), "--study", "../etc"],
        ErrorCode.INVALID_CONFIGURATION,
    ),
    BadInput(
        "two_files_one_id",
        lambda w, f: [
            *_copy(SVS, f, "S-twin.svs"),
            *_copy(WSI / "CMU-1-Small-Region.jpeg.tiff", f, "S-twin.tiff"),
        ],
        ErrorCode.INVALID_CONFIGURATION,
    ),
    BadInput(
        "other_file_under_a_known_id",
        lambda w, f: [*_copy(SVS, f, "other.svs"), "--slide-id", w.first_good.stem, "--study", "DEMO-0001"],
        ErrorCode.SLIDE_ID_CONFLICT,
    ),
    BadInput(
        "known_slide_under_another_study",
        lambda w, f: [str(w.first_good), "--study", "ELSEWHERE"],
        ErrorCode.SLIDE_ID_CONFLICT,
    ),
    BadInput(
        "outside_allowed_roots",
        lambda w, f: _outside_roots(f),
        ErrorCode.OUTSIDE_ALLOWED_ROOTS,
        env={"PATHSTREAM_ALLOWED_ROOTS": "{scratch}/inbox"},
    ),
    BadInput(
        "manifest_without_path_column",
        lambda w, f: ["--manifest", str(_text(f, "m.csv", "slide_id,study_id\nA,B\n"))],
        ErrorCode.INVALID_CONFIGURATION,
    ),
    BadInput(
        "manifest_with_a_bad_mpp",
        lambda w, f: ["--manifest", str(_text(f, "m.csv", f"path,mpp\n{SVS},fast\n"))],
        ErrorCode.INVALID_CONFIGURATION,
    ),
    BadInput(
        "manifest_and_slides_together",
        lambda w, f: ["--manifest", str(_text(f, "m.csv", f"path\n{SVS}\n")), str(SVS)],
        ErrorCode.INVALID_CONFIGURATION,
    ),
    BadInput(
        "disk_full_during_ingest",
        lambda w, f: _copy(SVS, f, "S-full.svs"),
        ErrorCode.DISK_FULL,
        limit_file_bytes=2_000_000,
    ),
]


def _limited(limit: int | None) -> Callable[[], None] | None:
    if limit is None:
        return None

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def _run(workspace: Workspace, args: list[str], out: Path, **kwargs: Any) -> Any:
    return pathstream_cli("run", *args, "--out", str(out), "--json", env=workspace.env, **kwargs)


def _half_written(workspace: Workspace, *folders: Path) -> list[str]:
    """What a clean stop must never leave: an incomplete tile store, a temporary file, a report that
    does not parse, a slide row that is neither complete nor failed (pending/detected)."""
    problems = []
    stores = workspace.data / "stores"
    for store in sorted(stores.iterdir()) if stores.is_dir() else []:
        if tiledb.object_type(str(store)) != "group" or not read_store_meta(str(store)).get(MetaKey.COMPLETE):
            problems.append(f"incomplete store {store.name}")
    for folder in (workspace.data, *folders):
        problems += [f"temporary file {p}" for p in folder.rglob("*.partial")]
        for report in folder.rglob("report-v*.json"):
            json.loads(report.read_text())
    for study_id, study in _studies(workspace).items():
        problems += [
            f"slide {slide['slide_id']} of {study_id} left {slide['status']}"
            for slide in study["slides"]
            if slide["status"] not in ("complete", "failed")
        ]
    return problems


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("bad-input")
    first, second = (s.path for s in write_demo_study(root / "slides", 2))
    data = root / "data"
    ws = Workspace(root, data, first, second, demo_model_env(data))
    good = _run(ws, [str(first)], root / "out-good")
    assert good.returncode == 0, good.stderr[-3000:]
    return ws


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_fails_clearly_and_leaves_nothing_half_written(
    workspace: Workspace, case: BadInput
) -> None:
    folder = workspace.scratch(case.name)
    args = case.make(workspace, folder)
    env = {k: v.format(scratch=folder) for k, v in case.env.items()}
    before = _study(workspace)
    result = pathstream_cli(
        "run",
        *args,
        "--out",
        str(folder / "out"),
        "--json",
        env={**workspace.env, **env},
        preexec_fn=_limited(case.limit_file_bytes),
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert f"[{case.code.value}]" in result.stderr, output[-3000:]
    assert "Traceback" not in output and "PathStream bug" not in output, output[-3000:]
    assert not _half_written(workspace, folder), _half_written(workspace, folder)
    assert _study(workspace) == before, "an earlier result changed"
    if result.stdout.strip():  # the slide ran and failed: its report names only files that exist
        for study in json.loads(result.stdout)["studies"]:
            for slide in study["slides"]:
                for key in ("geojson", "marrow_json"):
                    assert slide.get(key) is None or Path(slide[key]).is_file(), (key, slide)


def _studies(workspace: Workspace) -> dict[str, Any]:
    """Every study in the shared database as the reporter shows it."""
    engine = create_db_engine(f"sqlite:///{workspace.data / 'pathstream.db'}")
    try:
        with session_factory(engine)() as session:
            ids = session.scalars(select(Study.study_id).order_by(Study.study_id)).all()
            return {study_id: study_result(session, study_id) for study_id in ids}
    finally:
        engine.dispose()


def _study(workspace: Workspace) -> Any:
    return _studies(workspace)["DEMO-0001"]


def test_a_store_made_by_ingest_serves_run_without_mpp(workspace: Workspace) -> None:
    """A file without mpp, ingested with the operator's --mpp, runs later without it (issue 19)."""
    folder = workspace.scratch("ingested")
    (slide,) = _copy(WSI / "tcga-cr-7395-01a-01-ts1.svs", folder, "T-1_tcga.svs")
    ingested = pathstream_cli("ingest", slide, "--mpp", "0.25", "--json", env=workspace.env)
    assert ingested.returncode == 0, ingested.stderr[-3000:]
    result = _run(workspace, [slide], folder / "out")
    assert result.returncode == 0, result.stderr[-3000:]
    (study,) = json.loads(result.stdout)["studies"]
    assert [s["status"] for s in study["slides"]] == ["complete"]


def test_after_all_of_them_a_good_slide_still_runs_from_a_manifest(workspace: Workspace) -> None:
    manifest = workspace.root / "manifest.csv"
    manifest.write_text(f"path,slide_id,study_id,mpp\n{workspace.second_good},A2-manifest,DEMO-0001,\n")
    result = _run(workspace, ["--manifest", str(manifest)], workspace.root / "out-second")
    assert result.returncode == 0, result.stderr[-3000:]
    (study,) = json.loads(result.stdout)["studies"]
    by_id = {s["slide_id"]: s["status"] for s in study["slides"]}
    assert by_id == {workspace.first_good.stem: "complete", "A2-manifest": "complete"}
    assert json.loads(result.stdout)["fhir_reports_written"], "new results make new report versions"
    assert not _half_written(workspace)
