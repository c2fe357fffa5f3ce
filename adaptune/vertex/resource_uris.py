"""The URIs of Vertex AI resources as google-cloud-pipeline-components' artifacts carry them.

A ``google.VertexModel`` or ``google.VertexEndpoint`` artifact names its resource twice: its
``uri`` is the resource's REST URL on the regional service endpoint,
``https://LOCATION-aiplatform.googleapis.com/v1/projects/P/locations/L/models/ID@VERSION``, and
its ``resourceName`` metadata is the resource name itself. That is how GCPC's own upload and
endpoint components fill them in, and what Vertex AI's lineage graph and console read.
"""

from __future__ import annotations

from adaptune.errors import UserError

RESOURCE_NAME_KEY = "resourceName"
"""The metadata key of the resource name (the artifact types' schema)."""


def resource_location(resource_name: str) -> str:
    """The region of ``projects/P/locations/L/...``.

    Raises:
        UserError: If the name is not a regional resource name.
    """
    parts = resource_name.split("/")
    if len(parts) < 6 or parts[0] != "projects" or parts[2] != "locations" or not parts[3]:
        raise UserError(f"not a Vertex AI resource name: {resource_name!r}")
    return parts[3]


def resource_uri(resource_name: str) -> str:
    """``https://LOCATION-aiplatform.googleapis.com/v1/<resource_name>``.

    Raises:
        UserError: If the name is not a regional resource name.
    """
    location = resource_location(resource_name)
    return f"https://{location}-aiplatform.googleapis.com/v1/{resource_name}"
