"""Kafka wiring shared by all services: broker, retrying start, DLQ, topics, publishing, AsyncAPI."""
