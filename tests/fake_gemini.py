"""A fake of the Vertex AI REST calls google-genai makes for tuning and generation, on 127.0.0.1.

With ``vertexai=True``, a project, a location and ``HttpOptions(base_url=fake.url)`` the real
client sends ``{url}/v1beta1/projects/P/locations/L/...``; this server answers:

- ``POST .../tuningJobs`` (create), ``GET .../tuningJobs`` (list), ``GET .../tuningJobs/ID``
  (get) and ``POST .../tuningJobs/ID:cancel``;
- ``POST .../publishers/google/models/M:generateContent`` and
  ``POST .../endpoints/E:generateContent``;
- the tuned models, as the Vertex AI Model Registry serves them to google-cloud-aiplatform
  (REST, ``/v1/``): ``GET .../models/ID@VERSION``, and their evaluations: ``POST
  .../models/ID@VERSION/evaluations:import`` adds one, ``GET .../evaluations`` lists them. A
  job that succeeds makes its model; :meth:`FakeGemini.add_model` puts one there.

Every request is recorded (method, path, body, headers) so tests assert what the client sent.
A job's course is scripted (:class:`JobScript`): it runs for ``polls`` reads of it, one epoch
more done on each, then ends in ``final`` (with a tuned model and endpoint on success). A
cancel makes the next read CANCELLED. Errors are injected per path (``fail``): the next
matching requests answer 429 or 503 as the real API does.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

API_PREFIXES = ("/v1beta1/", "/v1/")
STATUS = {400: "INVALID_ARGUMENT", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED", 503: "UNAVAILABLE"}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class JobScript:
    """How a created tuning job goes: RUNNING for ``polls`` reads, then ``final``.

    Attributes:
        polls: Reads of the job that answer a running state before it ends.
        final: The state it ends in (``JOB_STATE_SUCCEEDED``, ``..._FAILED``, ...).
        error: The job's error message when it does not succeed.
        with_model: Whether an ended job names its tuned model and endpoint.
    """

    polls: int = 2
    final: str = "JOB_STATE_SUCCEEDED"
    error: str = ""
    with_model: bool = True


def _time(offset_seconds: float = 0) -> str:
    moment = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(seconds=offset_seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error(code: int, message: str) -> tuple[int, dict[str, Any]]:
    return code, {"error": {"code": code, "message": message, "status": STATUS.get(code, "ERROR")}}


@dataclass
class FakeGemini:
    """The server's state: tuning jobs by name, recorded requests, scripts and failures."""

    script: JobScript = field(default_factory=JobScript)
    answer: Callable[[str, dict[str, Any]], str] = lambda model, body: f"answer of {model}"
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    evaluations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    failures: list[tuple[str, str, int]] = field(default_factory=list)
    delay_seconds: float = 0.0
    in_flight: int = 0
    max_in_flight: int = 0

    def __post_init__(self) -> None:
        self._reads: dict[str, int] = {}
        self._scripts: dict[str, JobScript] = {}
        self._counter = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeGemini:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def calls(self, method: str, suffix: str = "") -> list[Request]:
        """Recorded requests with this method whose path contains ``suffix``."""
        return [r for r in self.requests if r.method == method and suffix in r.path]

    def fail(self, method: str, suffix: str, code: int = 429, times: int = 1) -> None:
        """Answer the next ``times`` ``method`` requests whose path has ``suffix`` with ``code``."""
        self.failures.extend([(method, suffix, code)] * times)

    def add_job(self, name: str, resource: dict[str, Any], script: JobScript | None = None) -> None:
        """Put a job there (one an earlier attempt started)."""
        self.jobs[name] = {"name": name, **resource}
        self._scripts[name] = script or self.script
        self._reads[name] = 0

    def add_model(self, versioned_name: str) -> None:
        """Put a tuned model version there (``projects/P/locations/L/models/ID@VERSION``)."""
        name, _, version = versioned_name.partition("@")
        self.models[f"{name}@{version or '1'}"] = {
            "name": name,
            "versionId": version or "1",
            "displayName": name.rsplit("/", 1)[-1],
            "versionAliases": ["default"],
            "createTime": _time(),
        }

    # --- request handling -------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else {}
                request = Request(
                    self.command, unquote(url.path), parse_qs(url.query), body, dict(self.headers)
                )
                with fake._lock:
                    fake.requests.append(request)
                    fake.in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
                    code, payload = fake._route(request)
                if fake.delay_seconds and request.path.endswith(":generateContent"):
                    time.sleep(fake.delay_seconds)  # outside the lock: calls overlap
                with fake._lock:
                    fake.in_flight -= 1
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _handle

        return Handler

    def _injected(self, request: Request) -> tuple[int, dict[str, Any]] | None:
        for failure in self.failures:
            method, suffix, code = failure
            if request.method == method and suffix in request.path:
                self.failures.remove(failure)
                return _error(code, f"injected {code}")
        return None

    def _route(self, request: Request) -> tuple[int, dict[str, Any]]:
        injected = self._injected(request)
        if injected:
            return injected
        path = request.path
        for prefix in API_PREFIXES:
            path = path.removeprefix(prefix)
        name, _, verb = path.partition(":")
        parts = name.split("/")
        if len(parts) < 4 or parts[0] != "projects" or parts[2] != "locations":
            return _error(404, f"not a Vertex AI resource: {path}")
        if verb == "generateContent" and request.method == "POST":
            return self._generate(name, request.body)
        if len(parts) >= 6 and parts[4] == "models":
            return self._model_route(request.method, parts, verb, request.body)
        if parts[-1] == "tuningJobs" and request.method == "POST":
            return self._create(name, request.body)
        if parts[-1] == "tuningJobs" and request.method == "GET":
            return 200, {"tuningJobs": list(self.jobs.values())}
        if len(parts) == 6 and parts[4] == "tuningJobs":
            if name not in self.jobs:
                return _error(404, f"{name} not found")
            if verb == "cancel" and request.method == "POST":
                self.jobs[name]["state"] = "JOB_STATE_CANCELLING"
                return 200, {}
            if not verb and request.method == "GET":
                return 200, self._read(name)
        return _error(400, f"unsupported: {request.method} {path}")

    def _model_route(
        self, method: str, parts: list[str], verb: str, body: dict[str, Any]
    ) -> tuple[int, dict[str, Any]]:
        """A tuned model version, or its evaluations (the real API's 404 for an unknown one)."""
        model_id, _, version = parts[5].partition("@")
        versioned = "/".join([*parts[:5], f"{model_id}@{version or '1'}"])
        if versioned not in self.models:
            return _error(404, f"{versioned} not found")
        rest = parts[6:]
        if not rest and not verb and method == "GET":
            return 200, self.models[versioned]
        if rest == ["evaluations"] and not verb and method == "GET":
            return 200, {"modelEvaluations": self.evaluations.get(versioned, [])}
        if rest == ["evaluations"] and verb == "import" and method == "POST":
            evaluation = dict(body.get("modelEvaluation") or {})
            if not evaluation.get("metricsSchemaUri"):
                return _error(400, "modelEvaluation.metricsSchemaUri is required")
            found = self.evaluations.setdefault(versioned, [])
            evaluation.update(name=f"{versioned}/evaluations/{len(found) + 1}", createTime=_time())
            found.append(evaluation)
            return 200, evaluation
        return _error(400, f"unsupported: {method} {'/'.join(parts)}:{verb}")

    def _create(self, parent: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if "baseModel" not in body or "supervisedTuningSpec" not in body:
            return _error(400, "baseModel and supervisedTuningSpec are required")
        self._counter += 1
        name = f"{parent}/{7000 + self._counter}"
        self.add_job(name, {**body, "state": "JOB_STATE_PENDING", "createTime": _time()})
        return 200, self.jobs[name]

    def _read(self, name: str) -> dict[str, Any]:
        job, script = self.jobs[name], self._scripts[name]
        if job["state"] == "JOB_STATE_CANCELLING":
            job.update(state="JOB_STATE_CANCELLED", endTime=_time(60))
            job["error"] = {"code": 1, "message": "CANCELLED"}
            return job
        if job["state"] not in ("JOB_STATE_PENDING", "JOB_STATE_RUNNING"):
            return job
        reads = self._reads[name] = self._reads[name] + 1
        if reads <= script.polls:
            job["state"] = "JOB_STATE_RUNNING"
            job["tuningJobState"] = "TUNING_JOB_STATE_TUNING"
            job["tuningJobMetadata"] = {"completedEpochCount": str(reads - 1)}
            return job
        job.update(state=script.final, endTime=_time(600), updateTime=_time(600))
        job.pop("tuningJobState", None)
        if script.error:
            job["error"] = {"code": 3, "message": script.error}
        if script.with_model and script.final.endswith("SUCCEEDED"):
            parent = name.rsplit("/tuningJobs/", 1)[0]
            number = name.rsplit("/", 1)[1]
            job["tunedModel"] = {
                "model": f"{parent}/models/{number}@1",
                "endpoint": f"{parent}/endpoints/{number}",
            }
            self.add_model(job["tunedModel"]["model"])
            job["tuningDataStats"] = {
                "supervisedTuningDataStats": {
                    "tuningDatasetExampleCount": "20",
                    "totalBillableTokenCount": "1234",
                    "totalTruncatedExampleCount": "0",
                    "tuningStepCount": "15",
                }
            }
        return job

    def _generate(self, model: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if not body.get("contents"):
            return _error(400, "contents is required")
        text = self.answer(model, body)
        return 200, {
            "candidates": [
                {"content": {"role": "model", "parts": [{"text": text}]}, "finishReason": "STOP"}
            ],
            "usageMetadata": {
                "promptTokenCount": 5,
                "candidatesTokenCount": 1,
                "totalTokenCount": 6,
            },
            "modelVersion": model.rsplit("/", 1)[-1],
        }
