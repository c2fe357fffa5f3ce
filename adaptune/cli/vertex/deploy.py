"""``adaptune vertex deploy``: serve a registry version on a Vertex AI endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from adaptune.cli.errors import reports_errors
from adaptune.cli.options import registry_dir_option
from adaptune.cli.vertex.options import (
    labels_option,
    pipeline_root_option,
    vertex_options,
    vertex_settings,
)
from adaptune.errors import UserError

CONFIG_KEY = "vertex_deploy"
DEPLOY_FLAGS = (
    "endpoint",
    "traffic_percentage",
    "machine_type",
    "accelerator_type",
    "accelerator_count",
    "min_replicas",
    "max_replicas",
    "serving_image",
    "artifact_prefix",
    "serving",
    "vllm_image",
    "max_loras",
    "max_lora_rank",
)


def deploy_settings(config_path: Path | None, flags: dict[str, Any]) -> Any:
    """``VertexDeploySettings`` from the ``--config`` file with the flags given on top.

    The file holds the settings as a mapping, or a pipeline config whose ``vertex_deploy``
    mapping holds them. Without a serving image, adaptune's default profile's image serves.

    Raises:
        UserError: On unknown keys or invalid values.
    """
    from adaptune.runner.params import load_config
    from adaptune.vertex.deploy_settings import VertexDeploySettings
    from pipelines.profiles import DEFAULT_PROFILE, PROFILES

    values = load_config(config_path) if config_path else {}
    if CONFIG_KEY in values:
        values = values[CONFIG_KEY] or {}
        if not isinstance(values, dict):
            raise UserError(f"{config_path}: {CONFIG_KEY} must be a mapping")
    values = {**values, **{k: flags[k] for k in DEPLOY_FLAGS if flags.get(k) is not None}}
    settings = VertexDeploySettings.from_dict(values)
    return settings.with_serving_image(PROFILES[DEFAULT_PROFILE].image)


@click.command("deploy")
@click.argument("model_ref")
@vertex_options
@registry_dir_option
@click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    help="YAML of deploy settings (or a pipeline config with a vertex_deploy mapping).",
)
@click.option("--endpoint", help="Endpoint display name, reused when it exists (default: MODEL).")
@click.option(
    "--traffic-percentage",
    type=int,
    help="Share of the endpoint's traffic for this version, 0-100 (default 100); the models "
    "already deployed keep the rest.",
)
@click.option("--machine-type", help="Serving machine type (default n1-standard-4).")
@click.option("--accelerator-type", help="Accelerator per replica, e.g. NVIDIA_L4.")
@click.option("--accelerator-count", type=int, help="Accelerators per replica.")
@click.option("--min-replicas", type=int, help="Replicas always running (default 1).")
@click.option("--max-replicas", type=int, help="Autoscaling upper bound (default 1).")
@click.option("--serving-image", help="Serving container image (default: adaptune's image).")
@click.option(
    "--artifact-prefix",
    help="gs:// directory to stage the files in (default: PIPELINE_ROOT/models).",
)
@click.option(
    "--serving",
    help="adaptune (adaptune serve, the default) or vllm (Model Garden's vLLM container: one "
    "endpoint per base model serves all its LoRA adapters; needs a gs:// base model and a GPU).",
)
@click.option("--vllm-image", help="vLLM serving image (default: Model Garden's, pinned tag).")
@click.option("--max-loras", type=int, help="vLLM: distinct adapters per batch (default 4).")
@click.option(
    "--max-lora-rank",
    type=int,
    help="vLLM's --max-lora-rank (default: the smallest allowed value >= the adapter's r).",
)
@pipeline_root_option
@click.option("--kms-key", help="Cloud KMS key for the model and a new endpoint (CMEK).")
@labels_option
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@reports_errors
def deploy(
    model_ref: str, registry_dir: Path, config_path: Path | None, as_json: bool, **flags: Any
) -> None:
    """Upload MODEL[@vN] from the registry to Vertex AI and deploy it to an endpoint.

    The version becomes a new version of the Vertex model for MODEL (created on the first
    deploy), labelled with its run id and data hash. MODEL alone means MODEL@production;
    MODEL@vN, MODEL@previous and MODEL@latest name others.
    """
    from adaptune.registry import parse_model_ref, resolve_version
    from adaptune.vertex.deployment import deploy_to_vertex

    vertex = vertex_settings(flags)
    settings = deploy_settings(config_path, flags)
    name, ref = parse_model_ref(model_ref)
    version = resolve_version(registry_dir, name, ref or "production")
    result = deploy_to_vertex(version, vertex, settings)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
        return
    click.echo(
        f"{version.ref} → {result.model_version}"
        + (" (uploaded)" if result.version_uploaded else " (uploaded before)")
    )
    click.echo(f"endpoint {result.endpoint}" + (" (created)" if result.endpoint_created else ""))
    if result.adapter_uri:
        click.echo(f"adapter {result.adapter_uri} (each request's dynamic-lora)")
    if result.evaluation:
        click.echo(f"evaluation metrics in the Model Registry: {result.evaluation}")
    if result.already_deployed:
        click.echo(f"already deployed as {result.deployed_model_id}; traffic unchanged")
    else:
        click.echo(f"deployed model {result.deployed_model_id}")
    split = ", ".join(f"{k}: {v}%" for k, v in sorted(result.traffic_split.items()))
    click.echo(f"traffic split {split}")
