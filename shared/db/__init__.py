"""PathStream database: models, engine, migrations, idempotent upserts and report inputs."""
