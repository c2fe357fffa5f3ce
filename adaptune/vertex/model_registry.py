"""Registry versions in the Vertex AI Model Registry: find the model, find or upload a version.

One local registry model is one Vertex model (found by its ``adaptune-model`` label and display
name); each registry version deployed becomes a new version of it (``parent_model``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from adaptune.errors import UserError
from adaptune.vertex.deploy_settings import (
    HEALTH_ROUTE,
    PREDICT_ROUTE,
    SERVE_COMMAND,
    SERVING_PORT,
    VertexDeploySettings,
)
from adaptune.vertex.jobs import label_value
from adaptune.vertex.lineage import (
    MODEL_LABEL,
    REGISTRY_VERSION_LABEL,
    RUN_LABEL,
    model_version_labels,
    version_description,
)
from adaptune.vertex.settings import VertexSettings

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.cloud import aiplatform

    from adaptune.registry.local import RegisteredVersion


def find_vertex_model(
    vertex: VertexSettings, model: str, credentials: Credentials | None = None
) -> aiplatform.Model | None:
    """The Vertex model holding registry model ``model``'s versions, or None.

    Raises:
        UserError: If several Vertex models claim to be ``model``.
    """
    from google.cloud import aiplatform

    found = [
        m
        for m in aiplatform.Model.list(
            filter=f'labels.{MODEL_LABEL}="{label_value(model)}"',
            project=vertex.project,
            location=vertex.location,
            credentials=credentials,
        )
        if m.display_name == model
    ]
    if len(found) > 1:
        names = ", ".join(m.resource_name for m in found)
        raise UserError(f"several Vertex models are registry model {model!r}: {names}")
    return found[0] if found else None


def find_uploaded_version(
    model: aiplatform.Model, version: RegisteredVersion, credentials: Credentials | None = None
) -> aiplatform.Model | None:
    """The version of ``model`` already uploaded from ``version`` (same number and run), or None.

    A deploy that failed after its upload is retried without a second upload this way.
    """
    from google.cloud import aiplatform

    run_id = label_value(str(version.metadata.get("run_id") or ""))
    registry = aiplatform.ModelRegistry(model, credentials=credentials)
    uploaded = registry.list_versions(
        filter=f'labels.{REGISTRY_VERSION_LABEL}="{version.version}" '
        f'AND labels.{RUN_LABEL}="{run_id}"'
    )
    if not uploaded:
        return None
    return registry.get_model(version=uploaded[-1].version_id)


def upload_version(
    vertex: VertexSettings,
    version: RegisteredVersion,
    settings: VertexDeploySettings,
    artifact_uri: str,
    parent: aiplatform.Model | None,
    credentials: Credentials | None = None,
) -> aiplatform.Model:
    """Upload ``version`` as the new default version of ``parent`` (or as a new model).

    Args:
        vertex: Project, region, extra labels and CMEK key.
        version: The registry version.
        settings: The serving image.
        artifact_uri: ``gs://`` directory holding the version's files.
        parent: The Vertex model to add a version to; None creates the model.
        credentials: Credentials (default: those given to ``aiplatform.init``).

    Returns:
        The uploaded model version.
    """
    from google.cloud import aiplatform

    return aiplatform.Model.upload(
        display_name=version.model,
        description=f"adaptune registry model {version.model}",
        artifact_uri=artifact_uri,
        parent_model=parent.resource_name if parent else None,
        is_default_version=True,
        version_description=version_description(version),
        serving_container_image_uri=settings.serving_image,
        serving_container_command=list(SERVE_COMMAND),
        serving_container_predict_route=PREDICT_ROUTE,
        serving_container_health_route=HEALTH_ROUTE,
        serving_container_ports=[SERVING_PORT],
        labels=model_version_labels(version, vertex.labels),
        project=vertex.project,
        location=vertex.location,
        credentials=credentials,
        encryption_spec_key_name=vertex.kms_key or None,
        sync=True,
    )
