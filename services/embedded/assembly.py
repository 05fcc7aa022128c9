"""The embedded pipeline built from settings: every service's handler and model, the database.

The handlers and models come from each service's own loader (`services.<service>.loader`), the
same functions its FastStream app uses, so `pathstream run` and `pathstream serve` cannot drift
apart in how a model is found, loaded or configured.
"""

from __future__ import annotations

from pathlib import Path

from pathstream.services.detector.loader import detector_handler
from pathstream.services.embedded.pipeline import EmbeddedPipeline, Progress
from pathstream.services.escnn.loader import escnn_handler
from pathstream.services.marrow.loader import marrow_handler
from pathstream.services.reporter.loader import reporter_handler
from pathstream.shared.db import migrate
from pathstream.shared.db.engine import create_db_engine, session_factory
from pathstream.shared.events import Specimen
from pathstream.shared.settings import PathStreamSettings


def assemble_pipeline(
    settings: PathStreamSettings, out: Path, specimen: Specimen, progress: Progress | None = None
) -> EmbeddedPipeline:
    """The embedded pipeline for slides of `specimen`, writing into `out`: the detector and ESCNN
    for lymph nodes or the marrow classifier for smears (only the models `specimen` needs are
    loaded), the reporter on the settings' database (migrated to the current schema).

    `progress("loading models", done, 1)` is called around the model loading. Raises
    `PathStreamError(MODEL_UNAVAILABLE)` when a needed checkpoint is not configured or unusable;
    call `close()` on the result when done.
    """
    report = progress or (lambda what, done, total: None)
    report("loading models", 0, 1)
    detector = escnn = marrow = None
    if specimen == Specimen.BONE_MARROW:
        marrow = marrow_handler(settings)
    else:
        detector = detector_handler(settings)
        escnn = escnn_handler(settings)
    report("loading models", 1, 1)
    migrate.upgrade(settings.database_url)
    engine = create_db_engine(settings.database_url)
    return EmbeddedPipeline(
        settings,
        out,
        engine,
        reporter_handler(settings, session_factory(engine)),
        detector=detector,
        escnn=escnn,
        marrow=marrow,
        progress=progress,
    )
