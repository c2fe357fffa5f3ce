"""The serving settings: where the registry is, the limits, and Vertex AI's container variables.

A custom container on Vertex AI is told by environment variables where to listen
(``AIP_HTTP_PORT``), which paths to answer (``AIP_PREDICT_ROUTE``, ``AIP_HEALTH_ROUTE``), where
the model's files are (``AIP_STORAGE_URI``) and which deployed model it is
(``AIP_DEPLOYED_MODEL_ID``). When they are set, the same server answers there too.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from adaptune.errors import UserError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
VERTEX_HOST = "0.0.0.0"  # Vertex AI sends requests to the container's address, not loopback.
TOKEN_ENV = "ADAPTUNE_SERVE_TOKEN"


@dataclass(frozen=True)
class ServeSettings:
    """What the server serves and the limits it enforces.

    Attributes:
        registry_dir: The model registry (a local directory).
        token: Bearer token every prediction and listing request must carry (None: no check).
        max_body_bytes: Largest request body (Vertex AI's own limit is 1.5 MB).
        max_instances: Most instances in one request.
        max_new_tokens: Largest ``maxOutputTokens`` a request may ask for.
        default_new_tokens: Tokens generated when a request does not say (at most
            ``max_new_tokens``).
        max_prompt_tokens: Prompt tokens kept (cut from the left, as in training).
        max_batch: Most prompts generated together for one adapter.
        idle_adapters: Adapters no alias points to that stay loaded (least recently used first
            out); those ``production`` or ``previous`` point to always stay.
        default_model: The model the Vertex AI predict route serves (needed when the registry
            holds more than one).
        predict_route: Extra predict path (``AIP_PREDICT_ROUTE``).
        health_route: Extra health path (``AIP_HEALTH_ROUTE``).
        deployed_model_id: ``deployedModelId`` in responses (``AIP_DEPLOYED_MODEL_ID``); the
            served ``model@vN`` when unset.
        precision: The dtype base models are held in: ``auto`` (bf16 on a GPU that supports
            it, else fp16 on GPU; fp32 on CPU), ``bf16``, ``fp16`` (GPU only) or ``fp32``.
        attention: The attention implementation base models run: ``auto``
            (``flash_attention_2`` when the flash-attn package is installed and they run on a
            CUDA GPU in bf16 or fp16, else ``sdpa``), ``sdpa``, ``eager`` or
            ``flash_attention_2``.
    """

    registry_dir: Path
    token: str | None = None
    max_body_bytes: int = 1_500_000
    max_instances: int = 32
    max_new_tokens: int = 256
    default_new_tokens: int = 64
    max_prompt_tokens: int = 256
    max_batch: int = 32
    idle_adapters: int = 4
    default_model: str | None = None
    predict_route: str | None = None
    health_route: str | None = None
    deployed_model_id: str | None = None
    precision: str = "auto"
    attention: str = "auto"

    def __post_init__(self) -> None:
        from adaptune.base_models.attention import ATTENTIONS  # imports torch: not at CLI start
        from adaptune.compute.precision import PRECISIONS

        if self.precision not in PRECISIONS:
            raise UserError(f"precision must be one of {list(PRECISIONS)}, got {self.precision!r}")
        if self.attention not in ATTENTIONS:
            raise UserError(f"attention must be one of {list(ATTENTIONS)}, got {self.attention!r}")
        for name in (
            "max_body_bytes",
            "max_instances",
            "max_new_tokens",
            "default_new_tokens",
            "max_prompt_tokens",
            "max_batch",
        ):
            if getattr(self, name) < 1:
                raise UserError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.idle_adapters < 0:
            raise UserError(f"idle_adapters must be 0 or more, got {self.idle_adapters}")
        for name in ("predict_route", "health_route"):
            route = getattr(self, name)
            if route is not None and not route.startswith("/"):
                raise UserError(f"{name} must start with '/', got {route!r}")


@dataclass(frozen=True)
class VertexEnvironment:
    """Vertex AI's custom-container variables (each None when unset).

    Attributes:
        port: ``AIP_HTTP_PORT``.
        predict_route: ``AIP_PREDICT_ROUTE``.
        health_route: ``AIP_HEALTH_ROUTE``.
        storage_uri: ``AIP_STORAGE_URI``: the model's files (the registry), often ``gs://``.
        deployed_model_id: ``AIP_DEPLOYED_MODEL_ID``.
    """

    port: int | None
    predict_route: str | None
    health_route: str | None
    storage_uri: str | None
    deployed_model_id: str | None

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> VertexEnvironment:
        """Read the variables (from ``os.environ`` unless given).

        Raises:
            UserError: If ``AIP_HTTP_PORT`` is not a port number.
        """
        env = os.environ if environ is None else environ
        port = env.get("AIP_HTTP_PORT") or None
        if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
            raise UserError(f"AIP_HTTP_PORT must be a port number, got {port!r}")
        return cls(
            port=int(port) if port else None,
            predict_route=env.get("AIP_PREDICT_ROUTE") or None,
            health_route=env.get("AIP_HEALTH_ROUTE") or None,
            storage_uri=env.get("AIP_STORAGE_URI") or None,
            deployed_model_id=env.get("AIP_DEPLOYED_MODEL_ID") or None,
        )

    @property
    def on_vertex(self) -> bool:
        """Whether Vertex AI started this container (it always sets the port)."""
        return self.port is not None

    def host(self, given: str | None) -> str:
        """The address to listen on: ``given``, else all interfaces on Vertex, else loopback."""
        return given or (VERTEX_HOST if self.on_vertex else DEFAULT_HOST)

    def listen_port(self, given: int | None) -> int:
        """The port: ``given``, else ``AIP_HTTP_PORT``, else 8080."""
        return given or self.port or DEFAULT_PORT
