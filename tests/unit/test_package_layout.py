"""The folders say where things are: one import package, and contracts that import no service."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# Folders that install under `pathstream.` (setup.py); importing them by their folder name only works
# from a checkout, next to any other project's `services` or `shared`.
FOLDERS = ("services", "shared", "synthetic", "training", "backbones")
# What `shared/` may use besides itself: the contracts stand on their own.
NOT_CONTRACTS = ("pathstream.services", "pathstream.synthetic", "pathstream.training", "pathstream.backbones")


def _python_files() -> list[Path]:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "*.py"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return [REPO / name for name in listed if (REPO / name).is_file()]


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def test_nothing_imports_a_folder_by_its_bare_name() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in _python_files()
        for line, module in _imported_modules(path)
        if module.split(".")[0] in FOLDERS
    ]
    assert offenders == [], "import these as pathstream.<folder>...:\n" + "\n".join(offenders)


def test_shared_holds_contracts_that_import_no_service() -> None:
    offenders = [
        f"{path.relative_to(REPO)}:{line} imports {module}"
        for path in _python_files()
        if path.is_relative_to(REPO / "shared")
        for line, module in _imported_modules(path)
        if module.startswith(NOT_CONTRACTS)
    ]
    assert offenders == [], "shared/ is for contracts only:\n" + "\n".join(offenders)


def test_the_check_above_sees_a_service_import(tmp_path: Path) -> None:
    # The scanner must notice the very import the rule forbids, or the two tests above prove nothing.
    bad = tmp_path / "bad.py"
    bad.write_text("from pathstream.services.escnn.model import build_escnn\nimport shared.events\n")
    modules = [module for _, module in _imported_modules(bad)]
    assert any(m.startswith(NOT_CONTRACTS) for m in modules)
    assert any(m.split(".")[0] in FOLDERS for m in modules)


@pytest.mark.slow
def test_the_wheel_installs_one_top_level_package(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            ".",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    (wheel,) = tmp_path.glob("pathstream-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {
        "pathstream",
        wheel.name.split("-py3")[0] + ".dist-info",
    }
    packaged = {"/".join(name.split("/")[:2]) for name in names if name.startswith("pathstream/")}
    assert packaged == {f"pathstream/{folder}" for folder in FOLDERS}
    # What the services read at run time travels with them.
    assert "pathstream/shared/db/migrations/script.py.mako" in names
    assert "pathstream/services/demo/checkpoints/escnn.pt" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "pathstream = pathstream.services.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_the_service_image_copies_every_packaged_folder() -> None:
    dockerfile = (REPO / "infra" / "compose" / "Dockerfile").read_text()
    for folder in FOLDERS:
        assert f"COPY {folder} ./{folder}" in dockerfile, f"the image would lack pathstream.{folder}"
    assert "setup.py" in dockerfile
