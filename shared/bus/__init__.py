"""Kafka on confluent-kafka: an idempotent producer, topic admin, consumers."""
