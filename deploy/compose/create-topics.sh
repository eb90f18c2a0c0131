#!/bin/sh
# One-shot topic initialiser of docker-compose.yml, run in the Apache Kafka image. Hookline also
# creates missing topics at start (--create-topics), with the same settings; creating them first
# lets every role start against a complete set, and shows the layout in one place.
# scripts/check-deploy checks these lists against the topic kinds Hookline knows.
set -eu

BOOTSTRAP="${KAFKA_BOOTSTRAP_SERVERS:-kafka:9092}"
PREFIX="${HOOKLINE_TOPIC_PREFIX:-hookline.}"
PARTITIONS="${HOOKLINE_TOPIC_PARTITIONS:-6}"
REPLICATION="${HOOKLINE_TOPIC_REPLICATION:-1}"
# Hookline's largest record (runtime::kafka::MAX_RECORD_BYTES).
MAX_RECORD_BYTES=2097152
# Partitioned topics: as many consumers of a group as partitions can share the work.
# The retry topics have one tier per fixed delay (schemas::RetryTier).
TOPICS="events deliveries retry.5s retry.30s retry.5m retry.30m retry.2h dead attempts rejected matches"
# Compacted topics, one partition so every reader sees every change in order.
COMPACTED_TOPICS="resources destination-health dead-states held"

kafka_topics=/opt/kafka/bin/kafka-topics.sh

create() {
    name="$1"
    partitions="$2"
    shift 2
    "$kafka_topics" --bootstrap-server "$BOOTSTRAP" --create --if-not-exists \
        --topic "$PREFIX$name" --partitions "$partitions" --replication-factor "$REPLICATION" \
        --config "max.message.bytes=$MAX_RECORD_BYTES" "$@"
}

for topic in $TOPICS; do
    create "$topic" "$PARTITIONS"
done
for topic in $COMPACTED_TOPICS; do
    create "$topic" 1 --config cleanup.policy=compact
done
"$kafka_topics" --bootstrap-server "$BOOTSTRAP" --list
