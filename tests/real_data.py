"""Where the real test slides and images live (`shared/data/real`, next to the project).

The project's checkout normally sits beside `shared/` (so it is `../shared/data/real`); a clone made
elsewhere finds it through `PATHSTREAM_REAL_DATA`, a `shared/` folder beside any parent folder, or
the workplace's `/work/shared`.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def real_data_dir(strict: bool = True) -> Path:
    """The folder holding MANIFEST.md, wsi/, lymph_node_pcam/ and bone_marrow_mll_smear/.

    With `strict=False` a missing folder returns the expected `../shared/data/real` instead of
    raising, so only the tests that read it fail (with the path in their error).
    """
    candidates: list[Path] = []
    if os.environ.get("PATHSTREAM_REAL_DATA"):
        candidates.append(Path(os.environ["PATHSTREAM_REAL_DATA"]))
    candidates += [parent / "shared" / "data" / "real" for parent in REPO.parents]
    candidates.append(Path("/work/shared/data/real"))
    for candidate in candidates:
        if (candidate / "MANIFEST.md").is_file():
            return candidate
    if not strict:
        return REPO.parent / "shared" / "data" / "real"
    looked = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(
        f"The real test data (shared/data/real with MANIFEST.md) was not found; looked in {looked}. "
        "Set PATHSTREAM_REAL_DATA to its folder."
    )
