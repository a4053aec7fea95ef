#!/usr/bin/env python3
"""Produces interactions with third-party Kafka clients, for the runtime's interop tests.

    produce_interactions.py --brokers HOST:PORT --topic T --client CLIENT --count N --start K [--schema FILE]

CLIENT: confluent-json (confluent-kafka, JSON values), confluent-avro (confluent-kafka's
AvroSerializer, Confluent wire format, with its in-memory mock schema registry; prints the
schema id it assigned as {"schema_id": N}), kafka-python (JSON values).
"""
import argparse
import json
import sys


def record(n):
    return {
        "interaction_id": f"py-{n}",
        "conversation_id": f"conv-{n % 7}",
        "customer_id": f"cust-{n}",
        "channel": "email",
        "product": None,
        "language": "en",
        "text": f"message {n} from a third-party client",
        "demographics": {"age_band": "25-34"},
        "sent_at": 1_790_000_000_000_000 + n,
        "tenant_id": "default",
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--client", required=True, choices=["confluent-json", "confluent-avro", "kafka-python"])
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--schema")
    args = ap.parse_args()
    records = [record(n) for n in range(args.start, args.start + args.count)]

    if args.client == "kafka-python":
        from kafka import KafkaProducer

        p = KafkaProducer(bootstrap_servers=args.brokers, acks="all")
        for r in records:
            p.send(args.topic, key=r["conversation_id"].encode(), value=json.dumps(r).encode())
        p.flush(timeout=30)
        p.close()
        return

    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": args.brokers})
    serialize = lambda r: json.dumps(r).encode()
    if args.client == "confluent-avro":
        from confluent_kafka.schema_registry import SchemaRegistryClient
        from confluent_kafka.schema_registry.avro import AvroSerializer
        from confluent_kafka.serialization import MessageField, SerializationContext

        registry = SchemaRegistryClient.new_client({"url": "mock://insights-tests"})
        schema = open(args.schema).read()
        avro = AvroSerializer(registry, schema, lambda obj, ctx: obj)
        ctx = SerializationContext(args.topic, MessageField.VALUE)
        serialize = lambda r: avro(r, ctx)
    errors = []
    for r in records:
        value = serialize(r)
        p.produce(args.topic, key=r["conversation_id"], value=value,
                  on_delivery=lambda err, msg: errors.append(err) if err else None)
    p.flush(30)
    if errors:
        sys.exit(f"delivery failed: {errors[0]}")
    if args.client == "confluent-avro":
        print(json.dumps({"schema_id": int.from_bytes(value[1:5], "big")}))


if __name__ == "__main__":
    main()
