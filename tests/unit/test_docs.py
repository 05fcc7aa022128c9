"""The README documents every setting, and CI runs exactly the README's test command."""

from __future__ import annotations

from pathlib import Path

from pathstream.shared.settings import PathStreamSettings

REPO = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_the_readme_table() -> None:
    readme = (REPO / "README.md").read_text()
    missing = [
        f"PATHSTREAM_{name.upper()}"
        for name in PathStreamSettings.model_fields
        if f"`PATHSTREAM_{name.upper()}`" not in readme
    ]
    assert missing == []


def test_ci_runs_the_readme_test_command() -> None:
    readme = (REPO / "README.md").read_text()
    ci = (REPO / ".ci" / "run").read_text()
    assert "```bash\ninfra/test.sh\n```" in readme
    assert "exec infra/test.sh\n" in ci
