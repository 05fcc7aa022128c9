"""The reporter's persistence: events applied to the database idempotently, and a study's report inputs."""
