"""Event contracts: required fields, validation rules, JSON round trip, keys and versions."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from pathstream.shared.events import (
    ALL_EVENTS,
    LnLabel,
    LymphNodeDetected,
    LymphNodeScored,
    MarrowClass,
    MarrowClassified,
    ReportReady,
    SlideDetected,
    SlideScanned,
)
from pathstream.shared.topics import Topic
from tests import samples


def _json(event: object) -> dict:
    return json.loads(event.model_dump_json())  # type: ignore[attr-defined]


def test_class_names_and_topics_are_the_contract() -> None:
    assert [e.__name__ for e in ALL_EVENTS] == [
        "SlideScanned",
        "SlideDetected",
        "LymphNodeDetected",
        "LymphNodeScored",
        "MarrowClassified",
        "ReportReady",
        "SlideFailed",
    ]
    assert [e.TOPIC for e in ALL_EVENTS] == list(Topic)


@pytest.mark.parametrize("event", samples.one_of_each(), ids=lambda e: type(e).__name__)
def test_common_fields_and_json_round_trip(event: object) -> None:
    data = _json(event)
    assert {"event_id", "schema_version", "occurred_at"} <= set(data)
    assert data["schema_version"] == "1.0"
    assert type(event).model_validate_json(json.dumps(data)) == event  # type: ignore[attr-defined]


def test_event_ids_are_unique_by_default() -> None:
    assert samples.slide_scanned().event_id != samples.slide_scanned().event_id


def test_kafka_keys() -> None:
    assert samples.slide_scanned().kafka_key() == b"S-001"
    assert samples.ln_detected(index=3).kafka_key() == b"S-001-ln003", "LNs spread over partitions"
    assert samples.ln_scored().kafka_key() == b"S-001", "results stay ordered per slide"
    assert samples.report_ready().kafka_key() == b"ST-001"


@pytest.mark.parametrize("field", ["slide_id", "study_id"])
@pytest.mark.parametrize("bad", ["", "../etc", "a b", "/abs", "x" * 201])
def test_ids_must_be_non_empty_and_path_safe(field: str, bad: str) -> None:
    data = _json(samples.slide_scanned()) | {field: bad}
    with pytest.raises(ValidationError) as info:
        SlideScanned.model_validate(data)
    assert field in str(info.value)


def test_specimen_is_an_enum() -> None:
    data = _json(samples.slide_scanned())
    assert SlideScanned.model_validate(data | {"specimen": "bone_marrow"}).specimen.value == "bone_marrow"
    with pytest.raises(ValidationError, match="specimen"):
        SlideScanned.model_validate(data | {"specimen": "liver"})


def test_sha256_is_checked_and_lowered() -> None:
    data = _json(samples.slide_scanned())
    assert SlideScanned.model_validate(data | {"sha256": "AB" * 32}).sha256 == "ab" * 32
    with pytest.raises(ValidationError, match="64 hexadecimal"):
        SlideScanned.model_validate(data | {"sha256": "abc"})


@pytest.mark.parametrize("mpp", [0.00499, 25.0, 0.0])
def test_operator_mpp_must_be_plausible(mpp: float) -> None:
    with pytest.raises(ValidationError, match="mpp"):
        SlideScanned.model_validate(_json(samples.slide_scanned()) | {"mpp": mpp})


@pytest.mark.parametrize(
    ("contour", "message"),
    [
        ([[0, 0], [10, 0]], "at least 3 points"),
        ([], "at least 3 points"),
        ([[0, 0], [5, 5], [10, 10]], "no area"),
        ([[1000, 1000], [1000, 1000], [1000, 1000]], "no area"),
        ([[-1, 0], [10, 0], [10, 10]], "greater than or equal to 0"),
    ],
)
def test_contours_need_three_points_and_an_area(contour: list, message: str) -> None:
    data = _json(samples.ln_detected()) | {"contour": contour}
    with pytest.raises(ValidationError, match=message):
        LymphNodeDetected.model_validate(data)


def test_contour_must_lie_in_its_bbox() -> None:
    data = _json(samples.ln_detected()) | {"contour": [[0, 0], [50, 0], [50, 50]]}
    with pytest.raises(ValidationError, match="inside bbox"):
        LymphNodeDetected.model_validate(data)


@pytest.mark.parametrize("score", [-0.01, 1.01, float("nan"), float("inf")])
def test_score_is_a_probability(score: float) -> None:
    data = _json(samples.ln_scored()) | {"score": score}
    with pytest.raises(ValidationError, match="score"):
        LymphNodeScored.model_validate(data)


def test_scores_at_the_bounds_are_valid() -> None:
    assert samples.ln_scored(score=0.0).label == LnLabel.NEGATIVE
    assert samples.ln_scored(score=1.0).label == LnLabel.POSITIVE
    assert samples.ln_scored(score=0.4).label == LnLabel.POSITIVE, "threshold is inclusive"


def test_label_must_agree_with_score_and_threshold() -> None:
    data = _json(samples.ln_scored(score=0.83)) | {"label": "negative"}
    with pytest.raises(ValidationError, match="label is negative"):
        LymphNodeScored.model_validate(data)
    data = _json(samples.ln_scored(score=0.2)) | {"screening_label": "negative"}
    with pytest.raises(ValidationError, match="screening_label"):
        LymphNodeScored.model_validate(data)


def test_ln_count_zero_is_legitimate_but_negative_is_not() -> None:
    data = _json(samples.slide_detected())
    assert SlideDetected.model_validate(data | {"ln_count": 0}).ln_count == 0
    with pytest.raises(ValidationError, match="ln_count"):
        SlideDetected.model_validate(data | {"ln_count": -1})


def test_marrow_probabilities_must_sum_to_one_and_cover_the_call() -> None:
    data = _json(samples.marrow_classified())
    with pytest.raises(ValidationError, match="sum to 1"):
        MarrowClassified.model_validate(data | {"case_probabilities": {"mds": 0.7, "aml": 0.7, "donor": 0.1}})
    with pytest.raises(ValidationError, match="case_call"):
        MarrowClassified.model_validate(
            data | {"case_call": "donor", "case_probabilities": {"mds": 0.6, "aml": 0.4}}
        )
    with pytest.raises(ValidationError, match="rois"):
        MarrowClassified.model_validate(data | {"rois": []})
    assert MarrowClassified.model_validate(data).case_call == MarrowClass.MDS


def test_report_counts_must_add_up() -> None:
    data = _json(samples.report_ready())
    with pytest.raises(ValidationError, match="ln_examined"):
        ReportReady.model_validate(data | {"ln_examined": 5})
    with pytest.raises(ValidationError, match="below_ajcc_minimum"):
        ReportReady.model_validate(data | {"below_ajcc_minimum": False})
    with pytest.raises(ValidationError, match="fhir_report"):
        ReportReady.model_validate(data | {"fhir_report": {"resourceType": "Patient"}})


def test_other_major_schema_versions_are_refused_minor_accepted() -> None:
    data = _json(samples.slide_scanned())
    assert SlideScanned.model_validate(data | {"schema_version": "1.3", "added_in_1_3": "x"})
    with pytest.raises(ValidationError, match=r"schema_version 2\.0 is not supported"):
        SlideScanned.model_validate(data | {"schema_version": "2.0"})


def test_occurred_at_must_carry_a_zone_and_is_stored_in_utc() -> None:
    data = _json(samples.slide_scanned())
    with pytest.raises(ValidationError, match="occurred_at"):
        SlideScanned.model_validate(data | {"occurred_at": "2026-11-23T08:00:00"})
    local = datetime(2026, 11, 23, 10, 0, tzinfo=timezone(timedelta(hours=2)))
    event = SlideScanned.model_validate(data | {"occurred_at": local.isoformat()})
    assert event.occurred_at.utcoffset() == timedelta(0)
    assert event.occurred_at == local
