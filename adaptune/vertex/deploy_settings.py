"""How a registered adapter version is served on a Vertex AI endpoint.

``serving: adaptune`` (the default) serves with adaptune's own image running ``adaptune serve``;
``serving: vllm`` with Vertex AI Model Garden's vLLM container, one deployment per base model
serving all its LoRA adapters (see :mod:`adaptune.vertex.vllm_container`). For ``adaptune``:
the serving container is adaptune's own image running ``adaptune serve``. The model is uploaded
with explicit routes (``/predict``, ``/health``) and port 8080, so Vertex AI starts the container
with ``AIP_PREDICT_ROUTE=/predict``, ``AIP_HEALTH_ROUTE=/health``, ``AIP_HTTP_PORT=8080`` and
``AIP_STORAGE_URI`` (its copy of the staged version directory); the server reads those variables.
Clients still call the endpoint's public ``.../endpoints/ID:predict``; Vertex forwards each
request to the container's predict route.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar

from adaptune.errors import UserError
from adaptune.settings_dict import check_fields, check_value, from_pipeline_dict, setting, shown
from adaptune.vertex.vllm_container import LORA_RANKS, VLLM_IMAGE

SERVE_COMMAND = ("adaptune", "serve")
PREDICT_ROUTE = "/predict"
HEALTH_ROUTE = "/health"
SERVING_PORT = 8080
MAX_DISPLAY_NAME = 128
SERVINGS = ("adaptune", "vllm")
MAX_LORAS = 64


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
        serving: ``adaptune`` (``adaptune serve`` in ``serving_image``, one model per
            registry model) or ``vllm`` (Model Garden's vLLM container, one endpoint per base
            model serving all its LoRA adapters; the base model must be on ``gs://`` and the
            deploy needs an accelerator).
        vllm_image: The vLLM serving image (``serving: vllm``).
        max_loras: Distinct adapters in one batch (vLLM's ``--max-loras``).
        max_lora_rank: vLLM's ``--max-lora-rank``: 0 sizes it from the adapter (the smallest
            allowed value at least its rank); set it higher to serve larger adapters later
            from the same deployment.
    """

    setting_name: ClassVar[str] = "vertex_deploy"

    endpoint: str = setting("", "Endpoint display name.", max_chars=MAX_DISPLAY_NAME)
    traffic_percentage: int = setting(100, "Share of traffic.", ge=0, le=100)
    machine_type: str = setting("n1-standard-4", "Machine type.", non_empty=True)
    accelerator_type: str = setting("", "Accelerator per replica.")
    accelerator_count: int = setting(0, "Accelerators per replica.", ge=0)
    min_replicas: int = setting(1, "Replicas always running.", ge=1)
    max_replicas: int = setting(1, "Upper bound for autoscaling.", ge=1)
    serving_image: str = setting("", "Serving container image.")
    artifact_prefix: str = setting("", "gs:// directory to stage versions under.")
    serving: str = setting("adaptune", "Serving container kind.", choices=SERVINGS)
    vllm_image: str = setting(VLLM_IMAGE, "vLLM serving image.", non_empty=True)
    max_loras: int = setting(4, "Adapters per batch (vLLM).", ge=1, le=MAX_LORAS)
    max_lora_rank: int = setting(
        0,
        "vLLM's --max-lora-rank (0: from the adapter).",
        choices=(0, *LORA_RANKS),
    )

    def __post_init__(self) -> None:
        check_fields(self, self.setting_name)
        if self.serving == "vllm" and not self.accelerator_type:
            raise UserError(
                "vertex_deploy.serving vllm needs a GPU: set accelerator_type and "
                "accelerator_count (e.g. NVIDIA_L4 and 1 with machine_type g2-standard-12)"
            )
        if any(c in self.endpoint for c in '"\\'):
            raise UserError(
                f"vertex_deploy.endpoint {self.endpoint!r}: at most {MAX_DISPLAY_NAME} "
                "characters, no quotes or backslashes"
            )
        if self.max_replicas < self.min_replicas:
            raise UserError(
                f"vertex_deploy.max_replicas ({self.max_replicas!r}) must be at least "
                f"min_replicas ({self.min_replicas})"
            )
        if bool(self.accelerator_type) != (self.accelerator_count > 0):
            raise UserError(
                "vertex_deploy.accelerator_type and accelerator_count go together (both or neither)"
            )
        if self.artifact_prefix and (
            not self.artifact_prefix.startswith("gs://") or len(self.artifact_prefix) <= 5
        ):
            raise UserError(
                "vertex_deploy.artifact_prefix must be a gs:// directory, got "
                f"{self.artifact_prefix!r}"
            )

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> VertexDeploySettings:
        """Build from the pipeline's ``vertex_deploy`` dict, rejecting unknown keys."""
        return from_pipeline_dict(cls, values, cls.setting_name)

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
    if values is None or values == {}:
        return None
    if not isinstance(values, dict):
        raise UserError(f"vertex_deploy must be a mapping, got {shown(values)}")
    odd = [k for k in values if not isinstance(k, str)]
    if odd:
        raise UserError(f"vertex_deploy keys must be strings, got {shown(odd[0])}")
    from adaptune.vertex.settings import VertexSettings

    where, how = split_pipeline_dict(values)
    if not where.get("project"):
        raise UserError("vertex_deploy.project is required to deploy to Vertex AI")
    for key, value in where.items():
        if key == "labels":
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise UserError(
                    f"vertex_deploy.labels must be a mapping of strings, got {shown(value)}"
                )
        else:
            check_value(f"vertex_deploy.{key}", value, str)
    try:
        settings = VertexSettings(**where)
    except UserError as exc:
        raise UserError(f"vertex_deploy: {exc}") from None
    deploy = VertexDeploySettings.from_dict(how)
    if not deploy.artifact_prefix and not settings.pipeline_root:
        raise UserError(
            "vertex_deploy needs artifact_prefix or pipeline_root: a gs:// directory to stage "
            "the version's files in"
        )
    return settings, deploy


def check_deploy_credentials(values: dict[str, Any] | None) -> None:
    """Refuse a Vertex AI deploy this machine has no credentials for, before anything runs.

    A local run deploys with Application Default Credentials (``GOOGLE_APPLICATION_CREDENTIALS``,
    ``gcloud auth application-default login``, or a metadata server); without any, the deploy
    would fail only after tuning. Nothing is checked when ``values`` is empty.

    Raises:
        UserError: If no credentials are found (one line: how to provide them).
    """
    if not values:
        return
    import google.auth
    from google.auth.exceptions import GoogleAuthError

    try:
        google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
    except GoogleAuthError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            "vertex_deploy is set but no Google Cloud credentials were found (set "
            "GOOGLE_APPLICATION_CREDENTIALS or run `gcloud auth application-default login`): "
            f"{first}"
        ) from None


def wants_vertex_deploy(
    vertex_deploy: dict[str, Any] | None, deploy_first: bool
) -> tuple[bool, str]:
    """Whether the pipeline's release goes on to a Vertex AI endpoint, and why (or why not).

    The version is deployed only when register-version left it for the deploy to promote: one
    whose comparison went stale (production moved since the gate) is not sent anywhere.

    Args:
        vertex_deploy: The pipeline's ``vertex_deploy`` dict; empty for the local registry only.
        deploy_first: Whether the registered version waits for its deploy to be promoted.

    Raises:
        UserError: If the dict has unknown keys or invalid values.
    """
    checked = check_vertex_deploy(vertex_deploy)
    if checked is None:
        return False, "no vertex_deploy settings: the version is in the local registry only"
    if not deploy_first:
        return False, "the version was registered but not promoted: nothing to deploy"
    where = checked[0]
    return True, f"deploy to Vertex AI ({where.project}/{where.location}), then promote"
