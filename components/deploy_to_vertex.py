"""Component: serve the registered version on a Vertex AI endpoint."""

from typing import NamedTuple

from kfp import dsl

from components.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def deploy_to_vertex(
    model_name: str,
    registry_dir: str,
    version: int,
    vertex_deploy: dict,
    serving_image: str,
) -> NamedTuple("Outputs", vertex_model=str, vertex_endpoint=str):
    """Upload model_name@v<version> to the Vertex AI Model Registry and deploy it to an endpoint.

    Args:
        model_name: Registry model name.
        registry_dir: Registry root directory.
        version: The version register_version made.
        vertex_deploy: project, location (pipeline_root or artifact_prefix) and endpoint,
            traffic_percentage, machine_type, accelerator_type, accelerator_count, min_replicas,
            max_replicas, serving_image.
        serving_image: The compile profile's image; vertex_deploy.serving_image overrides it.

    Returns:
        vertex_model: The Vertex model version deployed.
        vertex_endpoint: The Vertex endpoint it serves on.
    """
    from collections import namedtuple
    from pathlib import Path

    from adaptune.step_errors import reported
    from adaptune.vertex.deployment import deploy_registered_version

    with reported("deploy_to_vertex"):
        deployed = deploy_registered_version(
            Path(registry_dir), model_name, version, vertex_deploy, serving_image
        )
    print(f"deployed {model_name}@v{version} as {deployed.model_version} on {deployed.endpoint}")
    outputs = namedtuple("Outputs", ["vertex_model", "vertex_endpoint"])
    return outputs(deployed.model_version, deployed.endpoint)
