"""A fake Vertex AI REST server on 127.0.0.1, answering only the calls adaptune makes.

Resources live in memory as the JSON the real API returns. Every request is recorded (method,
path, query, body) so tests can assert exactly what the real ``google-cloud-aiplatform`` client
sent. Collections: pipeline jobs, schedules, and the metadata contexts behind experiments.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ID_PARAMS = {
    "pipelineJobs": "pipelineJobId",
    "contexts": "contextId",
    "metadataStores": "metadataStoreId",
}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class FakeVertex:
    """The server's state: resources by name, recorded requests, scripted job progress."""

    def __init__(self) -> None:
        self.resources: dict[str, dict[str, Any]] = {}
        self.requests: list[Request] = []
        self.progress: dict[str, list[dict[str, Any]]] = {}
        self._counter = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeVertex:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def calls(self, method: str, suffix: str = "") -> list[Request]:
        """Recorded requests with this method whose path contains ``suffix``."""
        return [r for r in self.requests if r.method == method and suffix in r.path]

    def script(self, name: str, *updates: dict[str, Any]) -> None:
        """Apply one update to resource ``name`` on each later GET of it (job progress)."""
        self.progress[name] = list(updates)

    # --- request handling -------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else {}
                request = Request(self.command, url.path, parse_qs(url.query), body)
                with fake._lock:
                    fake.requests.append(request)
                    code, payload = fake._route(request)
                self._reply(code, payload)

            do_GET = do_POST = do_DELETE = do_PATCH = _handle

        return Handler

    def _not_found(self, name: str) -> tuple[int, dict[str, Any]]:
        return 404, {"error": {"code": 404, "message": f"{name} not found", "status": "NOT_FOUND"}}

    def _route(self, request: Request) -> tuple[int, dict[str, Any]]:
        path = request.path.removeprefix("/v1/").removeprefix("/v1beta1/")
        name, _, verb = path.partition(":")
        parts = name.split("/")
        is_collection = len(parts) % 2 == 1
        if request.method == "POST" and verb:
            return self._verb(name, verb, request.body)
        if request.method == "POST" and is_collection:
            return self._create(name, parts[-1], request)
        if request.method == "GET" and is_collection:
            prefix = name + "/"
            items = [
                r
                for n, r in self.resources.items()
                if n.startswith(prefix) and "/" not in n[len(prefix) :]
            ]
            return 200, {parts[-1]: items}
        if request.method == "GET":
            return self._get(name)
        if request.method == "DELETE":
            if name not in self.resources:
                return self._not_found(name)
            del self.resources[name]
            return 200, {
                "name": f"{name}/operations/1",
                "done": True,
                "response": {"@type": "type.googleapis.com/google.protobuf.Empty"},
            }
        return 400, {"error": {"code": 400, "message": f"unsupported: {request.method} {path}"}}

    def _create(self, parent: str, collection: str, request: Request) -> tuple[int, dict[str, Any]]:
        ids = request.query.get(ID_PARAMS.get(collection, ""), [])
        self._counter += 1
        resource_id = ids[0] if ids else str(1000 + self._counter)
        name = f"{parent}/{resource_id}"
        if name in self.resources:
            return 409, {
                "error": {"code": 409, "message": f"{name} exists", "status": "ALREADY_EXISTS"}
            }
        resource = {**request.body, "name": name, "createTime": _now(), "updateTime": _now()}
        if collection == "pipelineJobs":
            resource["state"] = "PIPELINE_STATE_PENDING"
        elif collection == "schedules":
            resource.update(state="ACTIVE", startedRunCount="0", nextRunTime=_now())
        self.resources[name] = resource
        return 200, resource

    def _get(self, name: str) -> tuple[int, dict[str, Any]]:
        if name not in self.resources:
            return self._not_found(name)
        if self.progress.get(name):
            self.resources[name].update(self.progress[name].pop(0))
        return 200, self.resources[name]

    def _verb(self, name: str, verb: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if name not in self.resources:
            return self._not_found(name)
        if verb == "pause":
            self.resources[name]["state"] = "PAUSED"
        elif verb == "resume":
            self.resources[name]["state"] = "ACTIVE"
        return 200, {}
