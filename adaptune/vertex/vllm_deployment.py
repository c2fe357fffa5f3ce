"""Serve registry versions with Model Garden's vLLM container: one endpoint per base model.

A deploy with ``vertex_deploy.serving: vllm``:

1. checks the adapter is servable there (``vllm_container.check_adapter_servable``: LoRA, no
   DoRA, no ``modules_to_save``, a rank vLLM takes, a ``gs://`` base model) before anything is
   uploaded;
2. stages the version's files as the adaptune deploy does; the adapter's directory in them,
   ``<staged>/<model>/v<N>``, is what requests name;
3. finds the Vertex model serving the base model (labels ``adaptune-serving=vllm`` and
   ``adaptune-base-model``) and a version of it with the same container configuration (label
   ``adaptune-vllm-config``: image and arguments), uploading one when there is none;
4. finds the base model's endpoint by display name (default
   ``vllm_container.base_display_name``; created with the same labels), refusing one that
   serves another base model, and deploys that model version unless it is there already, so
   the second adapter of a base needs no new deployment at all;
5. records in ``<registry>/<model>/vertex-serving.json`` which endpoint serves the version and
   its adapter's ``gs://`` directory, for ``adaptune predict --vertex`` and ``compare --vertex``.

The result is a ``deployment.VertexDeployment``, so the release's deploy-then-promote and its
undo work unchanged: a deployment made by this release is undone when it is not promoted; one
found already serving (other adapters use it) is left as it is.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptune.atomic import write_json_atomic
from adaptune.errors import UserError
from adaptune.registry.index import model_dir
from adaptune.vertex import endpoints, vllm_container
from adaptune.vertex.deploy_settings import VertexDeploySettings
from adaptune.vertex.settings import VertexSettings

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.cloud import aiplatform

    from adaptune.registry.local import RegisteredVersion
    from adaptune.vertex.deployment import BeforeDeploy, VertexDeployment

SERVING_RECORD_FILE = "vertex-serving.json"


@dataclass(frozen=True)
class ServingRecord:
    """Where a registry version is served by vLLM on Vertex AI.

    Attributes:
        endpoint: The endpoint, ``projects/P/locations/L/endpoints/ID``.
        adapter_uri: The adapter's ``gs://`` directory (each request's ``dynamic-lora``).
        base_model: The base model the endpoint serves.
        project: Google Cloud project.
        location: Vertex AI region.
        api_endpoint: The Vertex API endpoint used (empty: the regional one).
    """

    endpoint: str
    adapter_uri: str
    base_model: str
    project: str
    location: str
    api_endpoint: str = ""


def serving_record_path(registry_dir: Path, model: str) -> Path:
    """``<registry>/<model>/vertex-serving.json``."""
    return model_dir(registry_dir, model) / SERVING_RECORD_FILE


def _read_records(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {"versions": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("versions"), dict):
            raise ValueError("not an object with 'versions'")
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not a vLLM serving record ({exc})") from None
    return data


def write_serving_record(version: RegisteredVersion, record: ServingRecord) -> Path:
    """Record (atomically) that ``record.endpoint`` serves ``version``; return the file."""
    path = version.path.parent / SERVING_RECORD_FILE
    data = _read_records(path)
    data["versions"][str(version.version)] = asdict(record)
    write_json_atomic(path, data)
    return path


def read_serving_record(registry_dir: Path, model: str, version: int) -> ServingRecord:
    """Where ``model@v<version>`` is served by vLLM on Vertex AI.

    Raises:
        UserError: If no vLLM deploy of that version was recorded, or the record is unreadable.
    """
    path = serving_record_path(registry_dir, model)
    entry = _read_records(path)["versions"].get(str(version))
    if entry is None:
        raise UserError(
            f"{model}@v{version} is not served by vLLM on Vertex AI (no record in {path}): "
            "deploy it with `adaptune vertex deploy --serving vllm` first"
        )
    try:
        return ServingRecord(**entry)
    except TypeError as exc:
        raise UserError(f"{path}: version {version}: not a vLLM serving record ({exc})") from None


def read_adapter_config(version: RegisteredVersion) -> dict[str, Any]:
    """The version's ``adapter_config.json``.

    Raises:
        UserError: If it is missing or not a JSON object.
    """
    path = version.path / "adapter_config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UserError(f"{version.ref}: cannot read {path} ({exc})") from None
    if not isinstance(config, dict):
        raise UserError(f"{version.ref}: {path} is not a JSON object")
    return config


def check_version_servable(version: RegisteredVersion, settings: VertexDeploySettings) -> int:
    """Whether vLLM can serve ``version``; the ``--max-lora-rank`` to serve it with.

    Raises:
        UserError: ``<model>@v<N>: <why vLLM cannot serve it>``.
    """
    base = str(version.metadata.get("base_model") or "")
    try:
        return vllm_container.check_adapter_servable(
            read_adapter_config(version), base, settings.max_lora_rank
        )
    except UserError as exc:
        raise UserError(f"{version.ref}: {exc}") from None


def _labels(vertex: VertexSettings, base_model: str) -> dict[str, str]:
    return {
        **vertex.labels,
        vllm_container.SERVING_LABEL: "vllm",
        vllm_container.BASE_LABEL: vllm_container.base_key(base_model),
    }


def find_base_model(
    vertex: VertexSettings, base_model: str, credentials: Credentials | None = None
) -> aiplatform.Model | None:
    """The Vertex model serving ``base_model`` with vLLM, or None.

    Raises:
        UserError: If several Vertex models claim it.
    """
    from google.cloud import aiplatform

    found = aiplatform.Model.list(
        filter=f'labels.{vllm_container.SERVING_LABEL}="vllm" AND '
        f'labels.{vllm_container.BASE_LABEL}="{vllm_container.base_key(base_model)}"',
        project=vertex.project,
        location=vertex.location,
        credentials=credentials,
    )
    if len(found) > 1:
        names = ", ".join(m.resource_name for m in found)
        raise UserError(f"several Vertex models serve {base_model} with vLLM: {names}")
    return found[0] if found else None


def find_or_upload_base_version(
    vertex: VertexSettings,
    base_model: str,
    settings: VertexDeploySettings,
    max_lora_rank: int,
    credentials: Credentials | None = None,
) -> tuple[aiplatform.Model, bool]:
    """The vLLM model version serving ``base_model`` with this configuration; uploaded if new.

    Returns:
        The model version and whether it was uploaded now.
    """
    from google.cloud import aiplatform

    args = vllm_container.container_args(base_model, max_lora_rank, settings.max_loras)
    key = vllm_container.config_key(settings.vllm_image, args)
    parent = find_base_model(vertex, base_model, credentials)
    if parent is not None:
        registry = aiplatform.ModelRegistry(parent, credentials=credentials)
        same = registry.list_versions(filter=f'labels.{vllm_container.CONFIG_LABEL}="{key}"')
        if same:
            return registry.get_model(version=same[-1].version_id), False
    uploaded = aiplatform.Model.upload(
        display_name=vllm_container.base_display_name(base_model),
        description=f"vLLM serving {base_model} with LoRA adapters (adaptune)",
        parent_model=parent.resource_name if parent else None,
        is_default_version=True,
        version_description=f"--max-lora-rank={max_lora_rank} --max-loras={settings.max_loras}",
        serving_container_image_uri=settings.vllm_image,
        serving_container_args=args,
        serving_container_environment_variables=vllm_container.container_env(base_model),
        serving_container_ports=[vllm_container.VLLM_PORT],
        serving_container_predict_route=vllm_container.VLLM_PREDICT_ROUTE,
        serving_container_health_route=vllm_container.VLLM_HEALTH_ROUTE,
        serving_container_shared_memory_size_mb=vllm_container.VLLM_SHARED_MEMORY_MB,
        serving_container_deployment_timeout=vllm_container.VLLM_DEPLOYMENT_TIMEOUT_S,
        labels={**_labels(vertex, base_model), vllm_container.CONFIG_LABEL: key},
        project=vertex.project,
        location=vertex.location,
        credentials=credentials,
        encryption_spec_key_name=vertex.kms_key or None,
        sync=True,
    )
    return uploaded, True


def _check_endpoint_base(endpoint: aiplatform.Endpoint, base_model: str) -> None:
    labels = dict(endpoint.gca_resource.labels)
    key = vllm_container.base_key(base_model)
    served = labels.get(vllm_container.BASE_LABEL)
    if labels.get(vllm_container.SERVING_LABEL) != "vllm" or served != key:
        what = f"base model key {served}" if served else "no vLLM base model"
        raise UserError(
            f"endpoint {endpoint.resource_name} ({endpoint.display_name!r}) is labelled with "
            f"{what}, not {base_model} (key {key}): one endpoint serves one base model; set "
            "vertex_deploy.endpoint to another name"
        )


def deploy_with_vllm(
    version: RegisteredVersion,
    vertex: VertexSettings,
    settings: VertexDeploySettings,
    credentials: Credentials | None = None,
    before_deploy: BeforeDeploy | None = None,
) -> VertexDeployment:
    """Serve ``version``'s adapter from its base model's vLLM endpoint (see the module doc).

    Raises:
        UserError: If vLLM cannot serve the adapter (before anything is uploaded), on a
            missing bucket, an endpoint serving another base model, or a failed step (the
            message names what exists).
    """
    from adaptune.vertex.deployment import (
        VertexDeployment,
        call_errors,
        stage_version,
        undo_failed_deploy,
        validate_accelerator,
    )
    from adaptune.vertex.jobs import init_vertex
    from adaptune.vertex.submission import storage_client

    max_lora_rank = check_version_servable(version, settings)
    validate_accelerator(settings)
    base_model = str(version.metadata["base_model"]).rstrip("/")
    root = settings.artifact_root(vertex.pipeline_root)
    init_vertex(vertex, credentials)
    try:
        uri = stage_version(storage_client(vertex, credentials), version, root)
        parent = find_base_model(vertex, base_model, credentials)
        uploaded, version_uploaded = find_or_upload_base_version(
            vertex, base_model, settings, max_lora_rank, credentials
        )
    except call_errors() as exc:
        raise UserError(
            f"uploading the vLLM server for {base_model} to the Vertex AI Model Registry failed: "
            f"{exc}. Nothing was deployed; running the deploy again reuses what was staged."
        ) from exc
    adapter_uri = f"{uri}/{version.model}/v{version.version}"
    endpoint_name = settings.endpoint or vllm_container.base_display_name(base_model)
    endpoint = None
    previous: dict[str, int] = {}
    before: set[str] = set()
    try:
        endpoint, endpoint_created = endpoints.find_or_create_endpoint(
            vertex, endpoint_name, credentials, labels=_labels(vertex, base_model)
        )
        _check_endpoint_base(endpoint, base_model)
        previous = dict(endpoint.gca_resource.traffic_split)
        before = {d.id for d in endpoint.gca_resource.deployed_models}
        if before_deploy is not None:
            before_deploy(endpoint, uploaded, previous, before)
        deployed = endpoints.deploy_version(
            endpoint, uploaded, settings, f"vllm-r{max_lora_rank}-v{uploaded.version_id}"
        )
    except (*call_errors(), UserError) as exc:
        where = endpoint.resource_name if endpoint else f"endpoint {endpoint_name!r}"
        undone = (
            undo_failed_deploy(endpoint.resource_name, uploaded, before, previous)
            if endpoint
            else ""
        )
        raise UserError(
            f"the vLLM server for {base_model} is uploaded as {uploaded.versioned_resource_name}"
            f", but deploying it to {where} failed: {exc}.{undone} Running the deploy again "
            "reuses that version" + (" and endpoint." if endpoint else ".")
        ) from exc
    write_serving_record(
        version,
        ServingRecord(
            endpoint=endpoint.resource_name,
            adapter_uri=adapter_uri,
            base_model=base_model,
            project=vertex.project,
            location=vertex.location,
            api_endpoint=vertex.api_endpoint,
        ),
    )
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
        previous_traffic_split=previous,
        serving="vllm",
        adapter_uri=adapter_uri,
    )


def predict_with_vllm(
    record: ServingRecord,
    prompts: list[str],
    options: Any,
    with_adapter: bool = True,
    credentials: Credentials | None = None,
) -> list[str]:
    """Ask the record's endpoint: each prompt names the adapter (or none: the base model).

    Args:
        record: Where the version is served.
        prompts: Prompts, rendered as in tuning.
        options: Decoding settings (``serving.generation_options.GenerationOptions``).
        with_adapter: Whether the requests name the adapter (False: the base model answers).
        credentials: Credentials (default: Application Default Credentials).

    Returns:
        One answer per prompt.

    Raises:
        UserError: If the endpoint cannot be reached or refuses the request.
    """
    from google.cloud import aiplatform

    from adaptune.vertex.deployment import call_errors
    from adaptune.vertex.jobs import init_vertex

    init_vertex(
        VertexSettings(
            project=record.project, location=record.location, api_endpoint=record.api_endpoint
        ),
        credentials,
    )
    instances = [
        vllm_container.predict_instance(
            prompt,
            record.adapter_uri if with_adapter else "",
            options.max_new_tokens,
            options.temperature,
            options.top_p,
            options.top_k,
        )
        for prompt in prompts
    ]
    try:
        response = aiplatform.Endpoint(record.endpoint, credentials=credentials).predict(
            instances=instances
        )
    except call_errors() as exc:
        raise UserError(f"predicting on {record.endpoint} failed: {exc}") from exc
    answers = [str(p) for p in response.predictions]
    if len(answers) != len(prompts):
        raise UserError(
            f"{record.endpoint} answered {len(answers)} predictions for {len(prompts)} prompts"
        )
    return answers
