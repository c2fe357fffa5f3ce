"""A fake Compute Engine metadata server on 127.0.0.1: Application Default Credentials for
processes the tests start (kfp.local's task subprocesses), as a Vertex AI worker gets them.

``google.auth.default()`` in a process whose ``GCE_METADATA_HOST`` and ``GCE_METADATA_IP``
point here finds "Compute Engine" credentials and fetches their token from this server, so the
real client libraries run unchanged and nothing leaves the machine.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ROOT = "/computeMetadata/v1/"


class FakeMetadata:
    """Answers the ping, the project id, the default service account and its token."""

    def __init__(self, project: str, email: str) -> None:
        self.project, self.email = project, email
        self.tokens_issued = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, the form ``GCE_METADATA_HOST`` takes."""
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    def start(self) -> FakeMetadata:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def answer(self, path: str) -> tuple[int, str, str]:
        """Status, content type and body for a GET of ``path``."""
        if path in ("", "/"):
            return 200, "text/plain", ""
        key = path.removeprefix(ROOT).rstrip("/")
        if key == "project/project-id":
            return 200, "text/plain", self.project
        if key == "universe/universe-domain":
            return 200, "text/plain", "googleapis.com"
        if key == "instance/service-accounts/default":
            info = {"email": self.email, "aliases": ["default"], "scopes": ["cloud-platform"]}
            return 200, "application/json", json.dumps(info)
        if key == "instance/service-accounts/default/token":
            self.tokens_issued += 1
            token = {"access_token": "fake-token", "expires_in": 3600, "token_type": "Bearer"}
            return 200, "application/json", json.dumps(token)
        return 404, "text/plain", f"not found: {path}"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                code, content_type, body = fake.answer(self.path.split("?")[0])
                data = body.encode()
                self.send_response(code)
                self.send_header("Metadata-Flavor", "Google")
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler
