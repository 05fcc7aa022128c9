"""`pathstream run --specimen bone_marrow`: smears end to end in one process (SQLite, TileDB), the
case call in the printed report, the FHIR document and the output folder; a rerun changes nothing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from tests.fhir_schema import assert_fhir_r4_valid
from tests.integration.cli_runs import pathstream_cli
from tests.integration.marrow_fixtures import small_checkpoint, write_smears

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def smears(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("marrow-run")
    truth = write_smears(root / "smears", cases=2, seed=5)
    paths = [root / "smears" / (case.slide or "") for case in truth.cases]
    # Slide ids come from file names: give each smear its own name in one study.
    named = []
    for index, path in enumerate(paths):
        target = root / "smears" / f"BM26-0009_S{index + 1}.tif"
        path.rename(target)
        named.append(target)
    version = small_checkpoint(root / "marrow.pt")
    env = {
        "PATHSTREAM_DATA_DIR": str(root / "data"),
        "PATHSTREAM_MARROW_CHECKPOINT": str(root / "marrow.pt"),
        "PATHSTREAM_MARROW_ROI_PX": "512",
        "PATHSTREAM_MARROW_OCCLUDER_PX": "32",
        "PATHSTREAM_MARROW_OCCLUSION_STRIDE_PX": "32",
    }
    return {"root": root, "paths": named, "env": env, "version": version}


def test_run_prints_and_stores_the_case_calls(smears: dict[str, Any]) -> None:
    out = smears["root"] / "out"
    args = ["run", "--specimen", "bone_marrow", "--out", str(out), *map(str, smears["paths"])]
    result = pathstream_cli(*args, "--json", env=smears["env"])
    assert result.returncode == 0, result.stderr[-3000:]
    (study,) = json.loads(result.stdout)["studies"]
    assert study["study_id"] == "BM26-0009" and study["status"] == "preliminary"
    assert study["pn_category"] is None and study["examined"] == 0
    assert smears["version"] in study["model_versions"]
    for slide in study["slides"]:
        marrow = slide["marrow"]
        assert slide["status"] == "complete" and marrow["model_version"] == smears["version"]
        assert marrow["case_call"] == max(marrow["probabilities"], key=marrow["probabilities"].get)
        assert len(marrow["rois"]) == 4
        written = json.loads(Path(slide["marrow_json"]).read_text())
        assert written["case_call"] == marrow["case_call"]
        maps = sorted((out / slide["slide_id"] / "occlusion_maps").glob("*.png"))
        assert len(maps) == 4

    reports = sorted((out / "reports" / "BM26-0009").glob("report-v*.json"))
    fhir = json.loads(reports[-1].read_text())
    DiagnosticReport.model_validate(fhir)
    observations = [r for r in fhir["contained"] if r["id"].startswith("marrow-")]
    assert len(observations) == 2
    by_slide = {o["identifier"][0]["value"]: o for o in observations}
    snomed = {"mds": "109995007", "aml": "91861009", "donor": "17621005"}
    for slide in study["slides"]:
        snomed_coding, local = by_slide[slide["slide_id"]]["valueCodeableConcept"]["coding"]
        assert snomed_coding["system"] == "http://snomed.info/sct"
        assert snomed_coding["code"] == snomed[slide["marrow"]["case_call"]]
        assert local["code"] == slide["marrow"]["case_call"]
    assert not any(r["id"].startswith("ln-") or r["id"] == "pn" for r in fhir["contained"])
    assert_fhir_r4_valid(fhir)
    assert "regional lymph nodes" not in fhir["conclusion"]
    assert "bone marrow BM26-0009_S1" in fhir["conclusion"]

    # A rerun of the same smears is a redelivery: no new report version.
    again = pathstream_cli(*args, "--json", env=smears["env"])
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads(again.stdout)["studies"][0]["report_version"] == study["report_version"]

    # People get tables with the call spelled out.
    table = pathstream_cli(*args, env=smears["env"])
    assert table.returncode == 0, table.stderr[-3000:]
    assert "case call" in table.stdout and "BM26-0009_S2" in table.stdout


def test_run_without_a_marrow_model_says_what_to_set(smears: dict[str, Any]) -> None:
    env = {k: v for k, v in smears["env"].items() if k != "PATHSTREAM_MARROW_CHECKPOINT"}
    out = str(smears["root"] / "o2")
    result = pathstream_cli(
        "run", "--specimen", "bone_marrow", "--out", out, str(smears["paths"][0]), env=env
    )
    assert result.returncode != 0
    assert "PATHSTREAM_MARROW_CHECKPOINT" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
