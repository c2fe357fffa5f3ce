"""A fake Vertex AI REST server on 127.0.0.1, answering only the calls adaptune makes.

Resources live in memory as the JSON the real API returns. Every request is recorded (method,
path, query, body) so tests can assert exactly what the real ``google-cloud-aiplatform`` client
sent. Collections: pipeline jobs, schedules, the metadata contexts behind experiments, models
(with versions: ``models:upload`` with ``parentModel`` adds one, ``ID@VERSION`` reads one) and
endpoints (``:deployModel`` and ``:undeployModel`` update their deployed models and traffic
split, refusing a split that does not add up to 100 as the real API does; ``:predict`` answers
as Model Garden's vLLM container does, see ``FakeVertex.vllm_answer``) and model versions'
evaluations (``models/ID@VERSION/evaluations:import`` adds one, a GET of
``.../evaluations`` lists them).

Model uploads, endpoint creation and deployments are long-running operations: the POST answers
an operation that is not done, and the first GET of the operation finishes it. Their effect is
applied at once. List calls honour ``filter`` clauses ``field="value"`` joined by ``AND``
(``display_name``, ``labels.KEY``, ...); any other filter is refused with 400, so a query the
fake would misread fails loudly instead of matching everything.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

ID_PARAMS = {
    "pipelineJobs": "pipelineJobId",
    "contexts": "contextId",
    "metadataStores": "metadataStoreId",
    "endpoints": "endpointId",
}
# The SDK's REST operations client polls operations on ``/ui/{name=...operations/*}`` (the first
# of its HTTP rules that matches), the other clients on ``/v1/``.
API_PREFIXES = ("/v1/", "/v1beta1/", "/ui/")
TYPES = "type.googleapis.com/google.cloud.aiplatform.v1."
LIST_KEYS = {"evaluations": "modelEvaluations"}  # a list answer's field, where not the collection
LRO_COLLECTIONS = {"endpoints": "Endpoint"}  # created through an operation answering this type
FILTER_CLAUSE = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*("[^"]*"|[^\s"]+)\s*$')
DEFAULT_ALIAS = "default"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    body: dict[str, Any]


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error(code: int, status: str, message: str) -> tuple[int, dict[str, Any]]:
    return code, {"error": {"code": code, "message": message, "status": status}}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def matches_filter(resource: dict[str, Any], text: str) -> bool:
    """Whether ``resource`` passes a list filter of ``field="value"`` clauses joined by AND.

    Raises:
        ValueError: On any other filter syntax.
    """
    for clause in re.split(r"\s+AND\s+", text.strip()):
        match = FILTER_CLAUSE.match(clause)
        if not match:
            raise ValueError(f"unsupported filter clause {clause!r}")
        field, value = match.group(1), match.group(2).strip('"')
        if field.startswith("labels."):
            actual = (resource.get("labels") or {}).get(field.removeprefix("labels."))
        else:
            actual = resource.get(_camel(field))
        if actual != value:
            return False
    return True


class FakeVertex:
    """The server's state: resources by name, recorded requests, scripted job progress."""

    def __init__(self) -> None:
        self.resources: dict[str, dict[str, Any]] = {}
        self.requests: list[Request] = []
        self.progress: dict[str, list[dict[str, Any]]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.model_versions: dict[str, list[dict[str, Any]]] = {}
        self.failures: list[tuple[str, str, int, str]] = []
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

    def fail(self, method: str, suffix: str, code: int = 429, message: str = "") -> None:
        """Answer the next ``method`` request whose path contains ``suffix`` with an error."""
        self.failures.append((method, suffix, code, message or f"injected error {code}"))

    def versions(self, model: str) -> list[dict[str, Any]]:
        """All versions of a model, oldest first (a model put in ``resources`` is version 1)."""
        if model in self.model_versions:
            return self.model_versions[model]
        return [self.resources[model]] if model in self.resources else []

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
        return _error(404, "NOT_FOUND", f"{name} not found")

    def _injected(self, request: Request) -> tuple[int, dict[str, Any]] | None:
        for failure in self.failures:
            method, suffix, code, message = failure
            if request.method == method and suffix in unquote(request.path):
                self.failures.remove(failure)
                return _error(code, "INJECTED", message)
        return None

    def _route(self, request: Request) -> tuple[int, dict[str, Any]]:
        injected = self._injected(request)
        if injected:
            return injected
        path = unquote(request.path)
        for prefix in API_PREFIXES:
            path = path.removeprefix(prefix)
        name, _, verb = path.partition(":")
        parts = name.split("/")
        is_collection = len(parts) % 2 == 1
        if request.method == "POST" and verb:
            return self._verb(name, verb, request.body)
        if request.method == "POST" and is_collection:
            return self._create(name, parts[-1], request)
        if request.method == "GET" and verb == "listVersions":
            return self._list(self.versions(name), "models", request)
        if request.method == "GET" and is_collection:
            prefix = name + "/"
            items = [
                r
                for n, r in self.resources.items()
                if n.startswith(prefix) and "/" not in n[len(prefix) :]
            ]
            return self._list(items, LIST_KEYS.get(parts[-1], parts[-1]), request)
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

    def _list(
        self, items: list[dict[str, Any]], key: str, request: Request
    ) -> tuple[int, dict[str, Any]]:
        text = (request.query.get("filter") or [""])[0]
        if text:
            try:
                items = [r for r in items if matches_filter(r, text)]
            except ValueError as exc:
                return _error(400, "INVALID_ARGUMENT", str(exc))
        return 200, {key: items}

    def _new_id(self) -> str:
        self._counter += 1
        return str(1000 + self._counter)

    def _operation(self, resource: str, response: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Start an operation on ``resource``; its first GET finishes it with ``response``."""
        name = f"{resource}/operations/{self._new_id()}"
        self.operations[name] = {"name": name, "done": True, "response": response}
        return 200, {"name": name, "done": False}

    def _create(self, parent: str, collection: str, request: Request) -> tuple[int, dict[str, Any]]:
        ids = request.query.get(ID_PARAMS.get(collection, ""), [])
        resource_id = ids[0] if ids else self._new_id()
        name = f"{parent}/{resource_id}"
        if name in self.resources:
            return _error(409, "ALREADY_EXISTS", f"{name} exists")
        resource = {**request.body, "name": name, "createTime": _now(), "updateTime": _now()}
        if collection == "pipelineJobs":
            resource["state"] = "PIPELINE_STATE_PENDING"
        elif collection == "schedules":
            resource.update(state="ACTIVE", startedRunCount="0", nextRunTime=_now())
        self.resources[name] = resource
        if collection in LRO_COLLECTIONS:
            return self._operation(name, {"@type": TYPES + LRO_COLLECTIONS[collection], **resource})
        return 200, resource

    def _get(self, name: str) -> tuple[int, dict[str, Any]]:
        if name in self.operations:
            return 200, self.operations[name]
        if "@" in name:
            version = self._model_version(*name.split("@", 1))
            return (200, version) if version else self._not_found(name)
        if name not in self.resources:
            return self._not_found(name)
        if self.progress.get(name):
            self.resources[name].update(self.progress[name].pop(0))
        return 200, self.resources[name]

    def _model_version(self, model: str, version: str) -> dict[str, Any] | None:
        for resource in self.versions(model):
            if version in (resource.get("versionId"), *resource.get("versionAliases", [])):
                return resource
        return None

    def _verb(self, name: str, verb: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if verb == "upload" and name.endswith("/models"):
            return self._upload_model(name, body)
        if verb == "import" and name.endswith("/evaluations"):
            return self._import_evaluation(name.removesuffix("/evaluations"), body)
        if name not in self.resources:
            return self._not_found(name)
        if verb == "deployModel":
            return self._deploy_model(name, body)
        if verb == "undeployModel":
            return self._undeploy_model(name, body)
        if verb == "predict":
            return self._predict(name, body)
        if verb == "pause":
            self.resources[name]["state"] = "PAUSED"
        elif verb == "resume":
            self.resources[name]["state"] = "ACTIVE"
        return 200, {}

    def _upload_model(self, collection: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """``models:upload``: a new model, or a new version of ``parentModel``."""
        parent_model = body.get("parentModel", "")
        if parent_model:
            if parent_model not in self.resources:
                return self._not_found(parent_model)
            name = parent_model
            versions = self.model_versions.setdefault(name, self.versions(name))
            version_id = str(max(int(v.get("versionId", "1")) for v in versions) + 1)
        else:
            name = f"{collection}/{body.get('modelId') or self._new_id()}"
            if name in self.resources:
                return _error(409, "ALREADY_EXISTS", f"{name} exists")
            versions = self.model_versions.setdefault(name, [])
            version_id = "1"
        now = _now()
        resource = {
            **body.get("model", {}),
            "name": name,
            "versionId": version_id,
            "createTime": versions[0]["createTime"] if versions else now,
            "updateTime": now,
            "versionCreateTime": now,
            "versionUpdateTime": now,
        }
        if "containerSpec" in resource:
            resource["supportedDeploymentResourcesTypes"] = [
                "DEDICATED_RESOURCES",
                "SHARED_RESOURCES",
            ]
        aliases = [a for a in resource.get("versionAliases", []) if a != DEFAULT_ALIAS]
        if not versions or DEFAULT_ALIAS in resource.get("versionAliases", []):
            for older in versions:
                older["versionAliases"] = [
                    a for a in older.get("versionAliases", []) if a != DEFAULT_ALIAS
                ]
            aliases.insert(0, DEFAULT_ALIAS)
            self.resources[name] = resource
        resource["versionAliases"] = aliases
        versions.append(resource)
        response = {"@type": TYPES + "UploadModelResponse", "model": name}
        return self._operation(name, {**response, "modelVersionId": version_id})

    def _deploy_model(self, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """``endpoints/ID:deployModel``: add the deployed model, replace a non-empty split."""
        endpoint = self.resources[name]
        deployed = dict(body.get("deployedModel") or {})
        model, _, version = str(deployed.get("model", "")).partition("@")
        target = self._model_version(model, version or DEFAULT_ALIAS)
        if target is None:
            return self._not_found(deployed.get("model", ""))
        deployed_id = self._new_id()
        deployed.update(
            id=deployed_id, model=model, modelVersionId=target["versionId"], createTime=_now()
        )
        split = {key: int(value) for key, value in (body.get("trafficSplit") or {}).items()}
        if "0" in split:
            split[deployed_id] = split.pop("0")
        known = {d["id"] for d in endpoint.get("deployedModels", [])} | {deployed_id}
        if split and (set(split) - known or sum(split.values()) != 100):
            return _error(400, "INVALID_ARGUMENT", f"invalid traffic split {split}")
        endpoint.setdefault("deployedModels", []).append(deployed)
        if split:
            endpoint["trafficSplit"] = split
        endpoint["updateTime"] = _now()
        response = {"@type": TYPES + "DeployModelResponse", "deployedModel": deployed}
        return self._operation(name, response)

    def _import_evaluation(self, parent: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """``models/ID@VERSION/evaluations:import``: the evaluation, listed under its version.

        As the real API: the parent model version must exist (``ID`` alone is its default
        version), and the body's ``modelEvaluation`` needs a ``metricsSchemaUri``.
        """
        model, _, version = parent.partition("@")
        if self._model_version(model, version or DEFAULT_ALIAS) is None:
            return self._not_found(parent)
        evaluation = dict(body.get("modelEvaluation") or {})
        if not evaluation.get("metricsSchemaUri"):
            return _error(400, "INVALID_ARGUMENT", "modelEvaluation.metricsSchemaUri is required")
        name = f"{parent}/evaluations/{self._new_id()}"
        evaluation.update(name=name, createTime=_now())
        self.resources[name] = evaluation
        return 200, evaluation

    @staticmethod
    def vllm_answer(instance: dict[str, Any]) -> str:
        """What the fake's vLLM server generates: which adapter answered, and the prompt."""
        adapter = instance.get("dynamic-lora")
        return f"[{adapter or 'base'}] {instance.get('prompt')}"

    def _predict(self, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """``endpoints/ID:predict`` on a vLLM deployment (the container's ``/generate``).

        Each instance needs a ``prompt``; the answer is ``vllm_answer``, wrapped as the
        container wraps it (``Prompt:\n...\nOutput:\n...``) unless ``raw_response`` is true.
        """
        endpoint = self.resources[name]
        split = {k: int(v) for k, v in (endpoint.get("trafficSplit") or {}).items()}
        if not endpoint.get("deployedModels") or not any(split.values()):
            return _error(400, "FAILED_PRECONDITION", f"{name} has no deployed model")
        served = max(split, key=lambda k: split[k])
        deployed = next(d for d in endpoint["deployedModels"] if d["id"] == served)
        predictions = []
        for instance in body.get("instances") or []:
            if not isinstance(instance.get("prompt"), str):
                return _error(400, "INVALID_ARGUMENT", "each instance needs a prompt")
            answer = self.vllm_answer(instance)
            if not instance.get("raw_response"):
                answer = f"Prompt:\n{instance['prompt'].strip()}\nOutput:\n{answer}"
            predictions.append(answer)
        return 200, {
            "predictions": predictions,
            "deployedModelId": served,
            "model": deployed["model"],
            "modelVersionId": deployed["modelVersionId"],
        }

    def _undeploy_model(self, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """``endpoints/ID:undeployModel``: remove the deployed model; a given split replaces.

        As the real API: the model must have no traffic left unless the request's split takes
        it away; once the last model is undeployed the split is empty.
        """
        endpoint = self.resources[name]
        deployed_id = str(body.get("deployedModelId", ""))
        models = endpoint.get("deployedModels", [])
        if deployed_id not in {d["id"] for d in models}:
            return self._not_found(f"{name} deployed model {deployed_id}")
        remaining = [d for d in models if d["id"] != deployed_id]
        given = {key: int(value) for key, value in (body.get("trafficSplit") or {}).items()}
        current = {k: int(v) for k, v in (endpoint.get("trafficSplit") or {}).items()}
        if not remaining:
            split: dict[str, int] = {}
        elif given:
            if set(given) - {d["id"] for d in remaining} or sum(given.values()) != 100:
                return _error(400, "INVALID_ARGUMENT", f"invalid traffic split {given}")
            split = given
        elif current.get(deployed_id):
            return _error(
                400, "FAILED_PRECONDITION", f"deployed model {deployed_id} still has traffic"
            )
        else:
            split = current
        endpoint["deployedModels"] = remaining
        endpoint["trafficSplit"] = split
        endpoint["updateTime"] = _now()
        response = {"@type": TYPES + "UndeployModelResponse"}
        return self._operation(name, response)
