"""Produces a JSON-lines file of interactions with a third-party client (confluent-kafka,
idempotent, keyed by conversation id), at a fixed rate or as fast as the broker takes them,
and writes each interaction's produce time (microseconds since the epoch) for the latency
figures of benches/e2e.sh. Before the clock starts, the producer warms up on a topic of its
own (connection, metadata, idempotent producer id): the first produce of a fresh client
waits for all that (about half a second on Tansu), which is the client's start, not the
pipeline's latency.

    python benches/e2e_produce.py --brokers B --file F --times OUT [--rate N] [--trace-ids OUT]

With --trace-ids, each message carries a W3C `traceparent` header of a new sampled trace (as
an instrumented producer's would), and OUT gets one `interaction:ID<TAB>TRACE_ID` line each.
"""

import argparse
import json
import os
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

WARM_TOPIC = "e2e.producer-warm-up"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--brokers", required=True)
    ap.add_argument("--file", required=True)
    ap.add_argument("--times", required=True)
    ap.add_argument("--topic", default="interactions.raw")
    ap.add_argument("--rate", type=float, default=0, help="messages per second; 0: as fast as possible")
    ap.add_argument("--trace-ids", help="send a traceparent with each message; write the trace ids here")
    args = ap.parse_args()
    producer = Producer(
        {
            "bootstrap.servers": args.brokers,
            "enable.idempotence": True,
            "linger.ms": 5,
            "compression.type": "lz4",
        }
    )
    admin = AdminClient({"bootstrap.servers": args.brokers})
    for future in admin.create_topics([NewTopic(WARM_TOPIC, 1, 1)]).values():
        try:
            future.result(30)
        except Exception as e:  # already there from an earlier run
            if "TOPIC_ALREADY_EXISTS" not in str(e):
                raise
    producer.list_topics(args.topic, timeout=30)
    producer.produce(WARM_TOPIC, value=b"warm-up")
    if producer.flush(30) != 0:
        raise SystemExit("e2e_produce: the warm-up message was not delivered")
    with open(args.file, "rb") as f:
        lines = [line.rstrip(b"\n") for line in f if line.strip()]
    times = []
    traces = []
    failed = []
    start = time.time()
    for n, line in enumerate(lines):
        if args.rate > 0:
            due = start + n / args.rate
            pause = due - time.time()
            if pause > 0:
                time.sleep(pause)
        try:
            record = json.loads(line)
            key = record.get("conversation_id") or ""
            ident = record.get("interaction_id")
        except ValueError:
            key, ident = "", None
        headers = None
        if args.trace_ids:
            trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
            headers = [("traceparent", f"00-{trace_id}-{span_id}-01".encode())]
            traces.append((ident, trace_id))
        while True:
            try:
                producer.produce(
                    args.topic,
                    key=key.encode(),
                    value=line,
                    headers=headers,
                    on_delivery=lambda err, _msg: err and failed.append(str(err)),
                )
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
        if ident:
            times.append((ident, int(time.time() * 1_000_000)))
    producer.flush(60)
    if failed:
        raise SystemExit(f"e2e_produce: {len(failed)} messages not delivered: {failed[0]}")
    with open(args.times, "w") as out:
        for ident, t in times:
            out.write(f"interaction:{ident}\t{t}\n")
    if args.trace_ids:
        with open(args.trace_ids, "w") as out:
            for ident, trace_id in traces:
                out.write(f"interaction:{ident}\t{trace_id}\n")
    print(json.dumps({"produced": len(lines), "seconds": round(time.time() - start, 2)}))


if __name__ == "__main__":
    main()
