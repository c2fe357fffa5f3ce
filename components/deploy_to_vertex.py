"""Component: serve the registered version on a Vertex AI endpoint, then make it production."""

from typing import NamedTuple

from google_cloud_pipeline_components.types.artifact_types import VertexEndpoint, VertexModel
from kfp import dsl
from kfp.dsl import Input, Model, Output

from components.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def deploy_to_vertex(
    trained_adapter: Input[Model],
    model_name: str,
    registry_dir: str,
    version: int,
    vertex_deploy: dict,
    serving_image: str,
    production_version: int,
    vertex_model: Output[VertexModel],
    vertex_endpoint: Output[VertexEndpoint],
) -> NamedTuple("Outputs", promoted=bool, note=str):
    """Deploy model_name@v<version> to Vertex AI; once it serves, promote it locally.

    The promotion is the gate's compare-and-set: production moves only if it is still the
    version the gate compared with. If it moved meanwhile, the deployment is undone and the
    version stays registered, unpromoted; if the deploy or the promotion fails, the task fails
    with local production and the endpoint's traffic as they were. The version's evaluation
    metrics are imported into its Vertex AI Model Registry entry before it is deployed.

    Args:
        trained_adapter: The adapter tune_adapter made, registered as the version (an input so
            that Vertex AI's lineage links it to the model and endpoint made from it).
        model_name: Registry model name.
        registry_dir: Registry root directory.
        version: The version register_version made (registered, not promoted).
        vertex_deploy: project, location (pipeline_root or artifact_prefix) and endpoint,
            traffic_percentage, machine_type, accelerator_type, accelerator_count, min_replicas,
            max_replicas, serving_image.
        serving_image: The compile profile's image; vertex_deploy.serving_image overrides it.
        production_version: The production version the gate compared with (0: none).
        vertex_model: The Vertex AI model version deployed (google.VertexModel: uri
            https://LOCATION-aiplatform.googleapis.com/v1/projects/P/locations/L/models/ID@V,
            metadata resourceName projects/P/locations/L/models/ID@V).
        vertex_endpoint: The endpoint it was deployed on (google.VertexEndpoint, likewise).

    Returns:
        promoted: Whether production now points at the version.
        note: Why it was not promoted and what was undone ("" when it was promoted).
    """
    from collections import namedtuple
    from pathlib import Path

    from adaptune.step_errors import reported
    from adaptune.vertex.deployment import release_registered_version
    from adaptune.vertex.resource_uris import resource_uri

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
    print(f"deployed {model_name}@v{version} from {trained_adapter.uri}")
    print(f"as {deployed.model_version} on {deployed.endpoint}")
    print(f"{model_name}@v{version} is now production" if release.promoted else release.note)
    vertex_model.uri = resource_uri(deployed.model_version)
    vertex_model.metadata["resourceName"] = deployed.model_version
    vertex_endpoint.uri = resource_uri(deployed.endpoint)
    vertex_endpoint.metadata["resourceName"] = deployed.endpoint
    outputs = namedtuple("Outputs", ["promoted", "note"])
    return outputs(release.promoted, release.note)
