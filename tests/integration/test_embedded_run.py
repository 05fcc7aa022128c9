"""The embedded run (`pathstream run`, `pathstream demo`) through the real command line, with the
bundled demo checkpoints, real synthetic slides, SQLite and local TileDB."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from sqlalchemy import select

from pathstream.services.demo.cohort import write_demo_study
from pathstream.services.demo.run import MARROW_CHECKPOINT
from pathstream.services.reporter.staging import pn_category
from pathstream.shared.db.engine import create_db_engine, session_factory
from pathstream.shared.db.models import StudyReport
from tests.conftest import SHARED_DATA
from tests.fhir_schema import assert_fhir_r4_valid
from tests.integration.cli_runs import demo_model_env, pathstream_cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("demo")
    result = pathstream_cli("demo", "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def _study(demo: dict[str, Any], study_id: str) -> dict[str, Any]:
    (study,) = [s for s in demo["studies"] if s["study_id"] == study_id]
    return study


def test_demo_reports_counts_pn_and_every_ln(demo: dict[str, Any]) -> None:
    assert [s["study_id"] for s in demo["studies"]] == ["DEMO-0001", "DEMO-BM01"]
    study = _study(demo, "DEMO-0001")
    assert study["study_id"] == "DEMO-0001" and study["status"] == "preliminary"
    assert [s["slide_id"] for s in study["slides"]] == [f"DEMO-0001_A{i}" for i in range(1, 5)]
    assert study["positive"] == sum(s["positive"] for s in study["slides"])
    assert study["negative"] == sum(s["negative"] for s in study["slides"])
    assert study["pn_category"] == pn_category(study["positive"], study["itc"])
    assert study["examined"] == study["positive"] + study["negative"] + study["itc"]
    assert study["below_ajcc_minimum"] == (study["examined"] < 15)
    for slide in study["slides"]:
        assert slide["status"] == "complete" and len(slide["lns"]) == slide["ln_count"] > 0
        assert slide["pn_category"] == pn_category(slide["positive"], slide["itc"])
        for ln in slide["lns"]:
            assert 0.0 <= ln["score"] <= 1.0 and ln["label"] == (
                "positive" if ln["score"] >= 0.4 else "negative"
            )
            assert Path(ln["heatmap"]).is_file()
        geojson = json.loads(Path(slide["geojson"]).read_text())
        assert sum(f["properties"]["pathstream"]["kind"] == "lymph_node" for f in geojson["features"]) == len(
            slide["lns"]
        )


def _reports(demo: dict[str, Any]) -> list[dict[str, Any]]:
    folder = Path(demo["out"]) / "results" / "reports" / "DEMO-0001"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("report-v*.json"))]


def test_demo_writes_one_valid_report_not_one_per_event(demo: dict[str, Any]) -> None:
    reports = _reports(demo)
    # The first report waits for the whole slide set: one version, not one per slide and LN.
    assert len(reports) == _study(demo, "DEMO-0001")["report_version"] == 1
    for document in reports:
        assert_fhir_r4_valid(document)
    final = DiagnosticReport.model_validate(reports[-1])
    assert final.status == "preliminary" and final.conclusion is not None
    assert f"p{_study(demo, 'DEMO-0001')['pn_category']} (AJCC 8th)" in final.conclusion  # e.g. "pN2"


def test_demo_study_signs_out_to_final_and_amends_after_it(demo: dict[str, Any]) -> None:
    """Sign-out and an amendment through the real CLI, on the demo's database."""
    env = {"PATHSTREAM_DATABASE_URL": f"sqlite:///{Path(demo['out']) / 'data' / 'pathstream.db'}"}
    assert (
        pathstream_cli("users", "add", "drx", "--role", "pathologist", "--name", "Dr X", env=env).returncode
        == 0
    )
    issued = pathstream_cli("users", "token", "drx", env=env)
    assert issued.returncode == 0, issued.stderr
    env["PATHSTREAM_REVIEW_TOKEN"] = issued.stdout.strip()
    signed = pathstream_cli("review", "sign-out", "DEMO-0001", "--reason", "agreed", env=env)
    assert signed.returncode == 0 and "final" in signed.stdout, signed.stderr
    again = pathstream_cli("review", "sign-out", "DEMO-0001", env=env)
    assert again.returncode != 0 and "already signed out" in again.stderr
    study = json.loads(pathstream_cli("review", "show", "DEMO-0001", "--json", env=env).stdout)
    node = next(n for s in study["slides"] for n in s["lns"] if n["label"] == "negative")
    changed = pathstream_cli(
        "review", "label", node["ln_id"], "positive", "--reason", "tumour on recut", env=env
    )
    assert changed.returncode == 0, changed.stderr
    view = json.loads(pathstream_cli("review", "show", "DEMO-0001", "--json", env=env).stdout)
    assert view["status"] == "corrected" and view["report_version"] == 3  # a call changed after final
    engine = create_db_engine(env["PATHSTREAM_DATABASE_URL"])
    with session_factory(engine)() as session:
        rows = session.scalars(
            select(StudyReport).where(StudyReport.study_id == "DEMO-0001").order_by(StudyReport.version)
        ).all()
        documents = [r.fhir for r in rows]
    engine.dispose()
    assert [d["status"] for d in documents] == ["preliminary", "final", "corrected"]
    assert len({d["id"] for d in documents}) == 1 and [d["meta"]["versionId"] for d in documents] == [
        "1",
        "2",
        "3",
    ]
    assert documents[1]["resultsInterpreter"][0]["display"] == "Dr X"
    for document in documents:
        assert_fhir_r4_valid(document)


def test_demo_models_find_and_call_the_synthetic_nodes(demo: dict[str, Any]) -> None:
    """The bundled models on held-out demo slides (a sanity bar for the demo, not a clinical claim)."""
    truth = demo["truth"]
    detected = len(truth["lymph_nodes"])
    assert detected >= 0.75 * truth["lymph_nodes_total"], truth["missed"]
    lns = [ln for s in _study(demo, "DEMO-0001")["slides"] for ln in s["lns"]]
    positive = [ln["score"] for ln in lns if truth["lymph_nodes"][ln["ln_id"]]["positive"]]
    negative = [ln["score"] for ln in lns if not truth["lymph_nodes"][ln["ln_id"]]["positive"]]
    pairs = [(p > n) + 0.5 * (p == n) for p in positive for n in negative]
    assert positive and negative and sum(pairs) / len(pairs) >= 0.8  # measured: 0.93 on 8 + 7 LNs


def test_demo_marrow_model_calls_the_synthetic_smears(demo: dict[str, Any]) -> None:
    """The bundled marrow model on the held-out demo smears, one per class (a sanity bar for the
    demo, not a clinical claim): every smear classified from 4 ROIs with occlusion maps."""
    study = _study(demo, "DEMO-BM01")
    assert study["status"] == "preliminary" and len(study["slides"]) == 3
    calls = {s["slide_id"]: s["marrow"]["case_call"] for s in study["slides"]}
    assert sorted(demo["truth"]["marrow"].values()) == ["aml", "donor", "mds"]
    for slide in study["slides"]:
        assert len(slide["marrow"]["rois"]) == 4
        assert all(Path(roi["osm_uri"]).is_file() for roi in slide["marrow"]["rois"])
    correct = sum(calls[slide] == label for slide, label in demo["truth"]["marrow"].items())
    assert correct >= 2, (calls, demo["truth"]["marrow"])


def test_run_matches_the_same_slides_twice_and_reports_a_broken_slide(tmp_path: Path) -> None:
    slides = write_demo_study(tmp_path / "slides", 1)
    broken = tmp_path / "slides" / "DEMO-0001_B1.tif"
    broken.write_bytes(b"not a tiff at all")
    env = demo_model_env(tmp_path / "data")
    args = ("run", str(slides[0].path), str(broken), "--out", str(tmp_path / "out"), "--json")
    first = pathstream_cli(*args, env=env)
    assert first.returncode == 2, first.stderr[-3000:]  # a failed slide: the run did not succeed
    assert "1 of 2 slides did not complete" in first.stderr and "DEMO-0001_B1" in first.stderr
    assert "Traceback" not in first.stderr
    again = pathstream_cli(*args, env=env)
    assert again.returncode == 2, again.stderr[-3000:]
    (study,), (repeat,) = json.loads(first.stdout)["studies"], json.loads(again.stdout)["studies"]
    assert repeat == study  # idempotent: the same slides make no new report version
    by_id = {s["slide_id"]: s for s in study["slides"]}
    assert by_id["DEMO-0001_B1"]["status"] == "failed" and by_id["DEMO-0001_B1"]["failure"]["code"]
    assert by_id["DEMO-0001_A1"]["status"] == "complete" and study["slides_failed"] == 1


def test_run_refuses_bad_input_clearly(tmp_path: Path) -> None:
    missing = pathstream_cli(
        "run", str(tmp_path / "nope.svs"), "--out", str(tmp_path / "out"), env=demo_model_env(tmp_path)
    )
    assert (
        missing.returncode == 2 and "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    )
    slide = write_demo_study(tmp_path / "slides", 1)[0].path
    no_model = pathstream_cli(
        "run",
        str(slide),
        "--out",
        str(tmp_path / "out"),
        env={"PATHSTREAM_DATA_DIR": str(tmp_path)},
    )
    assert no_model.returncode == 2 and "MODEL_UNAVAILABLE" in no_model.stderr


def test_run_takes_mpp_and_slide_ids_for_files_that_lack_them(tmp_path: Path) -> None:
    """Issue 19: a slide with an absurd mpp tag fails with exit 2 and a hint that works (`--mpp`); a
    rerun with `--mpp` processes it; a file name without a usable id takes `--slide-id`/`--study`."""
    real = SHARED_DATA / "wsi" / "CMU-1-Small-Region.jpeg.tiff"  # mpp tag 0.00499 um/px
    slide = tmp_path / "slides" / "S1_cmu.tiff"
    slide.parent.mkdir()
    slide.write_bytes(real.read_bytes())
    env = demo_model_env(tmp_path / "data")
    out = str(tmp_path / "out")
    failed = pathstream_cli("run", str(slide), "--out", out, "--json", env=env)
    assert failed.returncode == 2 and "MPP_ABSURD" in failed.stderr and "--mpp" in failed.stderr
    assert "Traceback" not in failed.stderr
    fixed = pathstream_cli("run", str(slide), "--out", out, "--json", "--mpp", "0.499", env=env)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    (study,) = json.loads(fixed.stdout)["studies"]
    assert study["slides"][0]["status"] == "complete" and study["slides"][0]["failure"] is None

    unnamed = tmp_path / "slides" / "\u6df7\u5408.tiff"  # only CJK characters: no id from the name
    unnamed.write_bytes(real.read_bytes())
    refused = pathstream_cli("run", str(unnamed), "--out", out, "--mpp", "0.499", env=env)
    assert refused.returncode == 2 and "--slide-id" in refused.stderr and "INTERNAL" not in refused.stderr
    named = pathstream_cli(
        "run",
        str(unnamed),
        "--out",
        out,
        "--json",
        "--mpp",
        "0.499",
        "--slide-id",
        "S2-A1",
        "--study",
        "S2",
        env=env,
    )
    assert named.returncode == 0, named.stderr[-3000:]
    (study,) = json.loads(named.stdout)["studies"]
    assert study["study_id"] == "S2" and study["slides"][0]["slide_id"] == "S2-A1"
    miscount = pathstream_cli("run", str(slide), "--out", out, "--slide-id", "A", "--slide-id", "B", env=env)
    assert miscount.returncode == 2 and "one --slide-id per slide" in miscount.stderr


def test_run_keeps_to_configured_allowed_roots_through_symlinks(tmp_path: Path) -> None:
    """Issue 19: with PATHSTREAM_ALLOWED_ROOTS set, `run` refuses a symlink to a slide outside them
    (as `ingest` does): the slide fails OUTSIDE_ALLOWED_ROOTS and the run exits 2."""
    outside = write_demo_study(tmp_path / "outside", 1)[0].path
    inside = tmp_path / "inside"
    inside.mkdir()
    link = inside / outside.name
    link.symlink_to(outside)
    env = {**demo_model_env(tmp_path / "data"), "PATHSTREAM_ALLOWED_ROOTS": f"{inside},{tmp_path / 'data'}"}
    refused = pathstream_cli("run", str(link), "--out", str(tmp_path / "out"), env=env)
    assert refused.returncode == 2 and "OUTSIDE_ALLOWED_ROOTS" in refused.stderr, refused.stderr[-3000:]
    assert "Traceback" not in refused.stderr


def test_a_slide_id_never_changes_meaning_between_runs(tmp_path: Path) -> None:
    """Issue 19: another file under an existing slide id, the same slide under another study or as
    another specimen is refused before anything is written; the earlier result stays as it was."""
    a1, a2 = (s.path for s in write_demo_study(tmp_path / "slides", 2))
    first = tmp_path / "run1" / "S9-0001_slide.tif"
    second = tmp_path / "run2" / "S9-0001_slide.tif"  # another slide, the same name
    for source, target in ((a1, first), (a2, second)):
        target.parent.mkdir()
        target.write_bytes(source.read_bytes())
    env = {**demo_model_env(tmp_path / "data"), "PATHSTREAM_MARROW_CHECKPOINT": str(MARROW_CHECKPOINT)}
    out = str(tmp_path / "out")
    done = pathstream_cli("run", str(first), "--out", out, "--json", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    (before,) = json.loads(done.stdout)["studies"]

    refusals = [
        ("run", str(second), "--out", out),
        ("run", str(first), "--out", out, "--study", "S9-0002"),
        ("run", str(first), "--out", out, "--specimen", "bone_marrow"),
    ]
    for args in refusals:
        refused = pathstream_cli(*args, env=env)
        assert refused.returncode == 2 and "SLIDE_ID_CONFLICT" in refused.stderr, (
            args,
            refused.stderr[-2000:],
        )
        assert "--slide-id" in refused.stderr and "Traceback" not in refused.stderr

    again = pathstream_cli("run", str(first), "--out", out, "--json", env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["studies"] == [before], "the earlier result changed"
    other = pathstream_cli("run", str(second), "--slide-id", "S9-0001_B1", "--out", out, "--json", env=env)
    assert other.returncode == 0, other.stderr[-3000:]


@pytest.mark.parametrize("database", ["sqlite", "postgresql"])
def test_concurrent_runs_on_one_database_both_succeed(
    tmp_path: Path, database: str, request: pytest.FixtureRequest
) -> None:
    """Issue 19: two `run`s at once on one database: the second waits, says so, and both end with
    the same complete report; nothing is left failed."""
    (slide,) = (s.path for s in write_demo_study(tmp_path / "slides", 1))
    env = demo_model_env(tmp_path / "data")
    if database == "postgresql":
        env["PATHSTREAM_DATABASE_URL"] = request.getfixturevalue("pg_url")
    full_env = {**os.environ, "PATHSTREAM_LOG_LEVEL": "WARNING", **env}
    runs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pathstream.services.cli",
                "run",
                str(slide),
                "--out",
                str(tmp_path / f"o{i}"),
                "--json",
            ],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outputs = [run.communicate(timeout=800) for run in runs]
    for run, (_, stderr) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, stderr[-3000:]
    assert any("Another `pathstream run` is using" in stderr for _, stderr in outputs), "nobody waited"
    reports = [json.loads(stdout)["studies"] for stdout, _ in outputs]
    for report in reports:
        for slide_result in report[0]["slides"]:
            slide_result.pop("geojson")
            assert slide_result["status"] == "complete"
            for ln in slide_result["lns"]:
                ln.pop("heatmap")
    assert reports[0] == reports[1]
