"""Deploy a registry version on Vertex AI: stage its files, upload a model version, serve it.

The steps are cheap to repeat: staged files live at a content-addressed path and are not
uploaded twice, a version already uploaded from the same registry version and run is reused,
the endpoint is found by display name before one is created, and a version already on the
endpoint is not deployed again. So after a failure, running the deploy again finishes the job;
the error says which resources already exist.
"""

from __future__ import annotations

import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptune.atomic import write_json_atomic
from adaptune.errors import UserError
from adaptune.hashing import sha256_named_files
from adaptune.registry.index import INDEX_FILE
from adaptune.vertex import endpoints, model_registry, staging
from adaptune.vertex.deploy_settings import VertexDeploySettings
from adaptune.vertex.google_errors import google_errors
from adaptune.vertex.jobs import init_vertex
from adaptune.vertex.settings import VertexSettings
from adaptune.vertex.submission import storage_client

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.cloud import storage

    from adaptune.registry.local import RegisteredVersion


@dataclass(frozen=True)
class VertexDeployment:
    """What a deploy made or found on Vertex AI.

    Attributes:
        model: The Vertex model, ``projects/P/locations/L/models/ID``.
        version_id: The model version serving the registry version.
        endpoint: The endpoint, ``projects/P/locations/L/endpoints/ID``.
        deployed_model_id: The endpoint's id for the deployed version.
        traffic_split: The endpoint's traffic split afterwards, by deployed model id.
        artifact_uri: ``gs://`` directory holding the version's files.
        model_created: Whether the Vertex model was created (its first version).
        version_uploaded: Whether the version was uploaded now (False: an earlier upload reused).
        endpoint_created: Whether the endpoint was created.
        already_deployed: Whether the version was on the endpoint already (nothing changed).
    """

    model: str
    version_id: str
    endpoint: str
    deployed_model_id: str
    traffic_split: dict[str, int] = field(default_factory=dict)
    artifact_uri: str = ""
    model_created: bool = False
    version_uploaded: bool = False
    endpoint_created: bool = False
    already_deployed: bool = False

    @property
    def model_version(self) -> str:
        """``projects/P/locations/L/models/ID@VERSION``."""
        return f"{self.model}@{self.version_id}"

    def to_dict(self) -> dict[str, Any]:
        """Plain values, with ``model_version`` added."""
        return {**asdict(self), "model_version": self.model_version}


def version_files(version_dir: Path) -> dict[str, Path]:
    """The files of a version directory by POSIX path relative to it, sorted."""
    return {
        p.relative_to(version_dir).as_posix(): p
        for p in sorted(version_dir.rglob("*"))
        if p.is_file()
    }


def artifact_uri(root: str, version: RegisteredVersion, files: dict[str, Path]) -> str:
    """``<root>/<model>/v<N>/<digest>``: the digest covers every file's path and content."""
    digest = sha256_named_files(files.items())[:16]
    return f"{root.rstrip('/')}/{version.model}/v{version.version}/{digest}"


def stage_version(client: storage.Client, version: RegisteredVersion, root: str) -> str:
    """Upload the version below ``root`` (once) as a one-version registry; return its URI.

    The directory holds ``<model>/v<N>/`` (the version's files) and ``<model>/index.json``
    with ``production`` pointing at it: the layout ``adaptune serve`` reads from
    ``AIP_STORAGE_URI`` on Vertex AI.

    Raises:
        UserError: If the bucket does not exist or the version directory has no files.
    """
    files = version_files(version.path)
    if not files:
        raise UserError(f"{version.ref}: no files in {version.path}")
    uri = artifact_uri(root, version, files)
    staging.check_bucket(client, staging.split_gs_uri(uri)[0])
    with tempfile.TemporaryDirectory() as tmp:
        index = Path(tmp) / INDEX_FILE
        write_json_atomic(
            index,
            {"versions": [version.version], "aliases": {"production": version.version}},
        )
        sources = {f"v{version.version}/{name}": path for name, path in files.items()}
        sources[INDEX_FILE] = index
        staging.upload_inputs(
            client, sources, {name: f"{uri}/{version.model}/{name}" for name in sources}
        )
    return uri


def deploy_to_vertex(
    version: RegisteredVersion,
    vertex: VertexSettings,
    settings: VertexDeploySettings,
    credentials: Credentials | None = None,
) -> VertexDeployment:
    """Upload a registry version to the Vertex AI Model Registry and deploy it to an endpoint.

    1. Stage the version's files to ``settings.artifact_root(vertex.pipeline_root)``.
    2. Upload them as the new default version of the Vertex model for ``version.model`` (found by
       its ``adaptune-model`` label; created on the first deploy), labelled with the run id and
       the data hash (see :mod:`adaptune.vertex.lineage`), unless that registry version and
       run were uploaded before.
    3. Find the endpoint ``settings.endpoint_name(version.model)`` or create it.
    4. Deploy the version with ``settings.traffic_percentage`` of the traffic.

    The SDK's global configuration is pointed at ``vertex`` first (``jobs.init_vertex``).

    Args:
        version: The registry version (``registry.local.RegisteredVersion``).
        vertex: Project, region, API endpoint, extra labels, CMEK key.
        settings: Endpoint, traffic, machine and serving image.
        credentials: Credentials (default: Application Default Credentials).

    Returns:
        The resource names and what was created.

    Raises:
        UserError: On invalid settings, a missing bucket, an ambiguous model or endpoint name,
            or when a step after the upload fails (the message names what exists).
    """
    from google.cloud.aiplatform import utils

    if not settings.serving_image:
        raise UserError("serving_image must not be empty")
    if settings.accelerator_type:
        try:
            utils.validate_accelerator_type(settings.accelerator_type)
        except ValueError as exc:
            raise UserError(f"accelerator_type: {exc}") from None
    root = settings.artifact_root(vertex.pipeline_root)
    init_vertex(vertex, credentials)
    try:
        uri = stage_version(storage_client(vertex, credentials), version, root)
        parent = model_registry.find_vertex_model(vertex, version.model, credentials)
        uploaded = (
            model_registry.find_uploaded_version(parent, version, credentials) if parent else None
        )
        version_uploaded = uploaded is None
        if uploaded is None:
            uploaded = model_registry.upload_version(
                vertex, version, settings, uri, parent, credentials
            )
    except google_errors() as exc:
        raise UserError(
            f"uploading {version.ref} to the Vertex AI Model Registry failed: {exc}. "
            "Nothing was deployed; running the deploy again reuses what was staged."
        ) from exc
    endpoint_name = settings.endpoint_name(version.model)
    endpoint = None
    try:
        endpoint, endpoint_created = endpoints.find_or_create_endpoint(
            vertex, endpoint_name, credentials
        )
        deployed = endpoints.deploy_version(
            endpoint, uploaded, settings, f"{version.model}-v{version.version}"
        )
    except (*google_errors(), ValueError) as exc:
        where = endpoint.resource_name if endpoint else f"endpoint {endpoint_name!r}"
        raise UserError(
            f"{version.ref} is uploaded as {uploaded.versioned_resource_name}, but deploying "
            f"it to {where} failed: {exc}. Running the deploy again reuses that version"
            + (" and endpoint." if endpoint else ".")
        ) from exc
    return VertexDeployment(
        model=uploaded.resource_name,
        version_id=uploaded.version_id,
        endpoint=endpoint.resource_name,
        deployed_model_id=deployed.deployed_model_id,
        traffic_split=deployed.traffic_split,
        artifact_uri=uri,
        model_created=parent is None,
        version_uploaded=version_uploaded,
        endpoint_created=endpoint_created,
        already_deployed=deployed.already_deployed,
    )


def deploy_registered_version(
    registry_dir: Path,
    model: str,
    version: int,
    vertex_deploy: dict[str, Any],
    serving_image: str,
) -> VertexDeployment:
    """The pipeline's deploy step: serve ``model@v<version>`` as ``vertex_deploy`` says.

    Args:
        registry_dir: Registry root.
        model: Registry model name.
        version: The version the register step made.
        vertex_deploy: The pipeline's dict: project, location (and the other
            ``VertexSettings`` keys) plus the ``VertexDeploySettings``.
        serving_image: The compile profile's image, used unless the dict names one.

    Raises:
        UserError: On invalid settings or a failed deploy (naming what exists).
    """
    from adaptune.registry.local import resolve_version
    from adaptune.vertex.deploy_settings import check_vertex_deploy

    checked = check_vertex_deploy(vertex_deploy)
    if checked is None:
        raise UserError("vertex_deploy is empty: nothing says where to deploy")
    where, how = checked
    registered = resolve_version(registry_dir, model, f"v{version}")
    return deploy_to_vertex(registered, where, how.with_serving_image(serving_image))
