"""A gated release: the version enters the registry as production, and maybe Vertex AI too."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptune.registry.local import Deployment, deploy_version

if TYPE_CHECKING:
    from adaptune.vertex.deployment import VertexDeployment

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Release:
    """What a release did.

    Attributes:
        deployment: The registry version and whether it became production.
        vertex: The Vertex AI model version and endpoint; None when not asked for (or when
            the version was not promoted: a stale comparison is not sent anywhere).
    """

    deployment: Deployment
    vertex: VertexDeployment | None = None


def release(
    registry_dir: Path,
    model: str,
    adapter_dir: Path,
    metadata: dict[str, Any],
    evaluated_against: int,
    vertex_deploy: dict[str, Any] | None = None,
) -> Release:
    """Deploy a gated version to the registry and, with ``vertex_deploy``, to Vertex AI.

    Args:
        registry_dir: Registry root.
        model: Registry model name.
        adapter_dir: The adapter that passed the gate.
        metadata: Facts stored with the version (run id, data hash, metrics, ...).
        evaluated_against: The production version the gate compared with (0: none).
        vertex_deploy: The pipeline's ``vertex_deploy`` dict: project, location and the
            Vertex deploy settings; empty or None for the registry only.

    Returns:
        The registry deployment and, if made, the Vertex deployment.
    """
    deployment = deploy_version(registry_dir, model, adapter_dir, metadata, evaluated_against)
    version = deployment.version
    log.info("registered %s at %s", version.ref, version.path)
    if not deployment.promoted:
        log.warning("%s", deployment.note)
        return Release(deployment)
    log.info("production → %s", version.ref)
    if not vertex_deploy:
        return Release(deployment)
    from adaptune.vertex.deploy_settings import VertexDeploySettings, split_pipeline_dict
    from adaptune.vertex.deployment import deploy_to_vertex
    from adaptune.vertex.settings import VertexSettings

    where, how = split_pipeline_dict(vertex_deploy)
    deployed = deploy_to_vertex(
        version, VertexSettings(**where), VertexDeploySettings.from_dict(how)
    )
    log.info("deployed %s as %s on %s", version.ref, deployed.model_version, deployed.endpoint)
    return Release(deployment, deployed)
