"""infra/ manifests: valid YAML whose pieces fit together (they are not applied here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pathstream.services.cli.serve import Service

INFRA = Path(__file__).resolve().parents[2] / "infra"


def _documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_kubernetes_manifests_fit_together() -> None:
    docs = [d for f in sorted((INFRA / "k8s").glob("*.yaml")) for d in _documents(f)]
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    escnn = deployments["pathstream-escnn"]["spec"]["template"]["spec"]
    assert escnn["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1 and escnn["tolerations"]
    for scaled in (d for d in docs if d["kind"] == "ScaledObject"):
        assert scaled["spec"]["scaleTargetRef"]["name"] in deployments
        assert scaled["spec"]["triggers"][0]["metadata"]["consumerGroup"] in {s.value for s in Service}
    served = {d["spec"]["template"]["spec"]["containers"][0]["command"][2] for d in deployments.values()}
    assert {s.value for s in Service} <= served


def test_compose_runs_every_service_after_migrations() -> None:
    (compose,) = _documents(INFRA / "compose" / "docker-compose.yml")
    services = compose["services"]
    assert {s.value for s in Service} <= set(services)
    assert services["escnn"]["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    assert services["reporter"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
