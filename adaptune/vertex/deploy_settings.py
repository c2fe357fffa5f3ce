"""How a registered adapter version is served on a Vertex AI endpoint.

The serving container is adaptune's own image running ``adaptune serve``. The model is uploaded
with explicit routes (``/predict``, ``/health``) and port 8080, so Vertex AI starts the container
with ``AIP_PREDICT_ROUTE=/predict``, ``AIP_HEALTH_ROUTE=/health``, ``AIP_HTTP_PORT=8080`` and
``AIP_STORAGE_URI`` (its copy of the staged version directory); the server reads those variables.
Clients still call the endpoint's public ``.../endpoints/ID:predict``; Vertex forwards each
request to the container's predict route.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from adaptune.errors import UserError
from adaptune.settings_dict import from_pipeline_dict

INT_FIELDS = ("traffic_percentage", "accelerator_count", "min_replicas", "max_replicas")
SERVE_COMMAND = ("adaptune", "serve")
PREDICT_ROUTE = "/predict"
HEALTH_ROUTE = "/health"
SERVING_PORT = 8080
MAX_DISPLAY_NAME = 128


@dataclass(frozen=True)
class VertexDeploySettings:
    """Where and on what a model version is served.

    Attributes:
        endpoint: Display name of the endpoint; reused when one exists, created otherwise
            (empty: the registry model's name).
        traffic_percentage: Share of the endpoint's traffic (0-100) the new version gets; the
            models already deployed keep the rest in their current proportions. The first model
            on an empty endpoint always gets 100.
        machine_type: Machine type of each serving replica.
        accelerator_type: Accelerator per replica, e.g. ``NVIDIA_L4`` (empty: none).
        accelerator_count: Accelerators per replica (needs ``accelerator_type``).
        min_replicas: Replicas always running.
        max_replicas: Upper bound for autoscaling.
        serving_image: Container image serving the adapter (``adaptune serve``); empty: the
            image the caller names (the compile profile's in a pipeline, the CLI's default).
        artifact_prefix: ``gs://`` directory the version's files are staged under (empty: the
            pipeline root's ``models/``).
    """

    endpoint: str = ""
    traffic_percentage: int = 100
    machine_type: str = "n1-standard-4"
    accelerator_type: str = ""
    accelerator_count: int = 0
    min_replicas: int = 1
    max_replicas: int = 1
    serving_image: str = ""
    artifact_prefix: str = ""

    def __post_init__(self) -> None:
        if not _is_int(self.traffic_percentage) or not 0 <= self.traffic_percentage <= 100:
            raise UserError(
                f"traffic_percentage must be a whole number from 0 to 100, "
                f"got {self.traffic_percentage!r}"
            )
        if len(self.endpoint) > MAX_DISPLAY_NAME or any(c in self.endpoint for c in '"\\'):
            raise UserError(
                f"endpoint name {self.endpoint!r}: at most {MAX_DISPLAY_NAME} characters, "
                "no quotes or backslashes"
            )
        if not self.machine_type:
            raise UserError("machine_type must not be empty")
        if not _is_int(self.min_replicas) or self.min_replicas < 1:
            raise UserError(f"min_replicas must be at least 1, got {self.min_replicas!r}")
        if not _is_int(self.max_replicas) or self.max_replicas < self.min_replicas:
            raise UserError(
                f"max_replicas ({self.max_replicas!r}) must be at least min_replicas "
                f"({self.min_replicas})"
            )
        if not _is_int(self.accelerator_count) or self.accelerator_count < 0:
            raise UserError(f"accelerator_count must be 0 or more, got {self.accelerator_count!r}")
        if bool(self.accelerator_type) != (self.accelerator_count > 0):
            raise UserError("accelerator_type and accelerator_count go together (both or neither)")
        if self.artifact_prefix and (
            not self.artifact_prefix.startswith("gs://") or len(self.artifact_prefix) <= 5
        ):
            raise UserError(
                f"artifact_prefix must be a gs:// directory, got {self.artifact_prefix!r}"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> VertexDeploySettings:
        """Build from the pipeline's ``vertex_deploy`` dict, rejecting unknown keys."""
        return from_pipeline_dict(cls, values, "Vertex deploy setting", INT_FIELDS)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict for JSON and the pipeline."""
        return asdict(self)

    def with_serving_image(self, default: str) -> VertexDeploySettings:
        """These settings, with ``default`` as the serving image unless one is set.

        Raises:
            UserError: If neither names an image.
        """
        image = self.serving_image or default
        if not image:
            raise UserError("serving_image must not be empty")
        return replace(self, serving_image=image)

    def endpoint_name(self, model: str) -> str:
        """The endpoint's display name for registry model ``model``."""
        return self.endpoint or model

    def artifact_root(self, pipeline_root: str) -> str:
        """The ``gs://`` directory versions are staged under.

        Raises:
            UserError: If neither ``artifact_prefix`` nor a pipeline root is set.
        """
        if self.artifact_prefix:
            return self.artifact_prefix.rstrip("/")
        if pipeline_root:
            return f"{pipeline_root.rstrip('/')}/models"
        raise UserError(
            "artifact_prefix is required without a pipeline root: a gs:// directory to stage "
            "the version's files in (--artifact-prefix or --pipeline-root)"
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


VERTEX_KEYS = ("project", "location", "pipeline_root", "api_endpoint", "kms_key", "labels")
"""Keys of the pipeline's ``vertex_deploy`` dict that say where (``VertexSettings``)."""


def split_pipeline_dict(values: dict[str, Any] | None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split the pipeline's ``vertex_deploy`` dict into (where, how).

    ``where`` holds the ``VERTEX_KEYS`` (``VertexSettings``), ``how`` the rest
    (``VertexDeploySettings``). An empty dict means no Vertex deploy; both parts are empty.
    """
    values = dict(values or {})
    where = {k: values.pop(k) for k in VERTEX_KEYS if k in values}
    return where, values


def check_vertex_deploy(values: dict[str, Any] | None) -> tuple[Any, VertexDeploySettings] | None:
    """The pipeline's ``vertex_deploy`` dict, checked whole: (where, how), None when empty.

    Where is a ``VertexSettings``, how a ``VertexDeploySettings``; ``runner.params`` checks the
    dict before anything runs, the release's resolver and deploy step use it again.

    Raises:
        UserError: On a missing project, unknown keys or invalid values, naming the key.
    """
    if not values:
        return None
    if not isinstance(values, dict):
        raise UserError(f"vertex_deploy must be a mapping, got {values!r}")
    from adaptune.vertex.settings import VertexSettings

    where, how = split_pipeline_dict(values)
    if not where.get("project"):
        raise UserError("vertex_deploy.project is required to deploy to Vertex AI")
    for key, value in where.items():
        if key != "labels" and not isinstance(value, str):
            raise UserError(f"vertex_deploy.{key} must be a string, got {value!r}")
    return VertexSettings(**where), VertexDeploySettings.from_dict(how)


def wants_vertex_deploy(vertex_deploy: dict[str, Any] | None, promoted: bool) -> tuple[bool, str]:
    """Whether the pipeline's release goes on to a Vertex AI endpoint, and why (or why not).

    Only a version that became production is deployed: one registered but not promoted (its
    comparison went stale) is not sent anywhere.

    Args:
        vertex_deploy: The pipeline's ``vertex_deploy`` dict; empty for the local registry only.
        promoted: Whether the registered version is now production.

    Raises:
        UserError: If the dict has unknown keys or invalid values.
    """
    checked = check_vertex_deploy(vertex_deploy)
    if checked is None:
        return False, "no vertex_deploy settings: the version is in the local registry only"
    if not promoted:
        return False, "the version was registered but not promoted: nothing to deploy"
    where = checked[0]
    return True, f"deploy to Vertex AI ({where.project}/{where.location})"
