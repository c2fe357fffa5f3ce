"""Vertex AI endpoints: find one by display name (or create it) and deploy a model version to it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from adaptune.errors import UserError
from adaptune.vertex.deploy_settings import VertexDeploySettings
from adaptune.vertex.settings import VertexSettings

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.cloud import aiplatform


@dataclass(frozen=True)
class DeployedVersion:
    """A model version on an endpoint.

    Attributes:
        deployed_model_id: The endpoint's id for this deployment.
        traffic_split: The endpoint's traffic split after the deploy, by deployed model id.
        already_deployed: Whether the version was deployed before (nothing was changed).
    """

    deployed_model_id: str
    traffic_split: dict[str, int]
    already_deployed: bool = False


def find_or_create_endpoint(
    vertex: VertexSettings,
    display_name: str,
    credentials: Credentials | None = None,
    labels: dict[str, str] | None = None,
) -> tuple[aiplatform.Endpoint, bool]:
    """The endpoint called ``display_name``, created (with ``labels``) when missing.

    Args:
        vertex: Project, region, CMEK key.
        display_name: The endpoint's display name.
        credentials: Credentials (default: those given to ``aiplatform.init``).
        labels: Labels of a new endpoint (default: ``vertex.labels``).

    Returns:
        The endpoint and whether it was created.

    Raises:
        UserError: If several endpoints have that display name.
    """
    from google.cloud import aiplatform

    found = aiplatform.Endpoint.list(
        filter=f'display_name="{display_name}"',
        project=vertex.project,
        location=vertex.location,
        credentials=credentials,
    )
    if len(found) > 1:
        names = ", ".join(e.resource_name for e in found)
        raise UserError(f"several endpoints are called {display_name!r}: {names}")
    if found:
        return found[0], False
    created = aiplatform.Endpoint.create(
        display_name=display_name,
        labels=dict(labels if labels is not None else vertex.labels) or None,
        project=vertex.project,
        location=vertex.location,
        credentials=credentials,
        encryption_spec_key_name=vertex.kms_key or None,
        sync=True,
    )
    return created, True


def _deployments_of(endpoint: aiplatform.Endpoint, model: aiplatform.Model) -> list[str]:
    return [
        d.id
        for d in endpoint.gca_resource.deployed_models
        if d.model == model.resource_name and d.model_version_id == model.version_id
    ]


def deploy_version(
    endpoint: aiplatform.Endpoint,
    model: aiplatform.Model,
    settings: VertexDeploySettings,
    display_name: str,
) -> DeployedVersion:
    """Deploy the model version to the endpoint with ``settings.traffic_percentage``.

    The models already deployed keep the rest of the traffic in their current proportions (the
    SDK's ``traffic_percentage``); on an endpoint without traffic the version gets 100. A version
    already on the endpoint is left as it is.

    Args:
        endpoint: The endpoint.
        model: The model version to deploy.
        settings: Traffic share, machine, accelerators and replicas.
        display_name: The deployed model's display name.

    Returns:
        The deployment and the endpoint's traffic split.
    """
    existing = _deployments_of(endpoint, model)
    if existing:
        return DeployedVersion(existing[0], dict(endpoint.gca_resource.traffic_split), True)
    before = {d.id for d in endpoint.gca_resource.deployed_models}
    has_traffic = bool(dict(endpoint.gca_resource.traffic_split))
    model.deploy(
        endpoint=endpoint,
        deployed_model_display_name=display_name,
        traffic_percentage=settings.traffic_percentage if has_traffic else 100,
        machine_type=settings.machine_type,
        min_replica_count=settings.min_replicas,
        max_replica_count=settings.max_replicas,
        accelerator_type=settings.accelerator_type or None,
        accelerator_count=settings.accelerator_count or None,
        sync=True,
    )  # re-reads the endpoint when done
    new = [d for d in _deployments_of(endpoint, model) if d not in before]
    if len(new) != 1:
        raise UserError(
            f"deployed {model.versioned_resource_name} to {endpoint.resource_name}, but the "
            f"endpoint lists {len(new)} new deployments of it"
        )
    return DeployedVersion(new[0], dict(endpoint.gca_resource.traffic_split))
