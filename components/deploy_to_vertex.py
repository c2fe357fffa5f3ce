"""Component: serve the registered version on a Vertex AI endpoint, then make it production."""

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
    production_version: int,
) -> NamedTuple("Outputs", vertex_model=str, vertex_endpoint=str, promoted=bool, note=str):
    """Deploy model_name@v<version> to Vertex AI; once it serves, promote it locally.

    The promotion is the gate's compare-and-set: production moves only if it is still the
    version the gate compared with. If it moved meanwhile, the deployment is undone and the
    version stays registered, unpromoted; if the deploy or the promotion fails, the task fails
    with local production and the endpoint's traffic as they were.

    Args:
        model_name: Registry model name.
        registry_dir: Registry root directory.
        version: The version register_version made (registered, not promoted).
        vertex_deploy: project, location (pipeline_root or artifact_prefix) and endpoint,
            traffic_percentage, machine_type, accelerator_type, accelerator_count, min_replicas,
            max_replicas, serving_image.
        serving_image: The compile profile's image; vertex_deploy.serving_image overrides it.
        production_version: The production version the gate compared with (0: none).

    Returns:
        vertex_model: The Vertex model version deployed.
        vertex_endpoint: The Vertex endpoint it serves on.
        promoted: Whether production now points at the version.
        note: Why it was not promoted and what was undone ("" when it was promoted).
    """
    from collections import namedtuple
    from pathlib import Path

    from adaptune.step_errors import reported
    from adaptune.vertex.deployment import release_registered_version

    with reported("deploy_to_vertex"):
        release = release_registered_version(
            Path(registry_dir),
            model_name,
            version,
            vertex_deploy,
            serving_image,
            production_version,
        )
    deployed = release.deployment
    print(f"deployed {model_name}@v{version} as {deployed.model_version} on {deployed.endpoint}")
    print(f"{model_name}@v{version} is now production" if release.promoted else release.note)
    outputs = namedtuple("Outputs", ["vertex_model", "vertex_endpoint", "promoted", "note"])
    return outputs(deployed.model_version, deployed.endpoint, release.promoted, release.note)
