"""An OTLP/HTTP trace receiver that writes every span it receives as a JSON line: for
looking at the pipeline's traces without a collector, and for the tests.

It speaks the protocol of an OpenTelemetry collector's port 4318 (POST /v1/traces, an
ExportTraceServiceRequest as protobuf or as OTLP JSON, gzip or not), decoded with the
official protobuf definitions (the opentelemetry-proto package; scripts/setup.sh installs
it in .tools/venv).

    .tools/venv/bin/python scripts/otlp_receiver.py --port 4318 --out spans.jsonl
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 insights run ...

Each line: trace_id, span_id, parent_span_id (hex), name, kind, service (service.name),
pid (process.pid), start_ns, end_ns, status ("ok", "error" or "unset"), attributes, events.
"""

import argparse
import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

KINDS = {v: k.removeprefix("SPAN_KIND_").lower() for k, v in Span.SpanKind.items()}
STATUS = {
    Status.STATUS_CODE_UNSET: "unset",
    Status.STATUS_CODE_OK: "ok",
    Status.STATUS_CODE_ERROR: "error",
}


def value(v):
    """An AnyValue as a plain value."""
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return [value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return getattr(v, kind) if kind else None


def attributes(kvs):
    return {kv.key: value(kv.value) for kv in kvs}


def lines(request):
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                yield {
                    "trace_id": span.trace_id.hex(),
                    "span_id": span.span_id.hex(),
                    "parent_span_id": span.parent_span_id.hex(),
                    "name": span.name,
                    "kind": KINDS.get(span.kind, str(span.kind)),
                    "service": resource.get("service.name"),
                    "pid": resource.get("process.pid"),
                    "start_ns": span.start_time_unix_nano,
                    "end_ns": span.end_time_unix_nano,
                    "status": STATUS.get(span.status.code, str(span.status.code)),
                    "attributes": attributes(span.attributes),
                    "events": [
                        {"name": e.name, "attributes": attributes(e.attributes)}
                        for e in span.events
                    ],
                }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: exporters reuse their connection
    out = None
    lock = threading.Lock()

    def do_GET(self):
        self.reply(200 if self.path == "/health" else 404, b"", "text/plain")

    def do_POST(self):
        if self.path != "/v1/traces":
            return self.reply(404, b"only /v1/traces is received here", "text/plain")
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.headers.get("Content-Encoding", "").lower() == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        json_body = self.headers.get("Content-Type", "").startswith("application/json")
        try:
            if json_body:
                json_format.Parse(body, request)
            else:
                request.ParseFromString(body)
        except Exception as e:  # a malformed request is the client's error
            return self.reply(400, str(e).encode(), "text/plain")
        with self.lock, open(self.out, "a", encoding="utf-8") as f:
            for line in lines(request):
                f.write(json.dumps(line) + "\n")
        response = ExportTraceServiceResponse()
        if json_body:
            self.reply(200, json_format.MessageToJson(response).encode(), "application/json")
        else:
            self.reply(200, response.SerializeToString(), "application/x-protobuf")

    def reply(self, status, body, content_type):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args):
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=4318)
    ap.add_argument("--out", required=True, help="JSON-lines file the spans are appended to")
    args = ap.parse_args()
    Handler.out = args.out
    open(args.out, "a").close()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"otlp_receiver: listening on http://{args.host}:{server.server_port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
