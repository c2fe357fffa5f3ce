"""Component: whether the release goes on to Vertex AI, a bool (for dsl.If) and a reason."""

from kfp import dsl

from components.images import IMAGE


@dsl.component(base_image=IMAGE, install_kfp_package=False)
def wants_vertex_deploy(
    vertex_deploy: dict, deploy_first: bool, reason: dsl.OutputPath(str)
) -> bool:
    """Deploy to Vertex AI iff vertex_deploy is set and the version waits for its deploy.

    The decision is the single return value (output "Output"), as kfp.local needs for dsl.If.

    Args:
        vertex_deploy: Empty for the local registry only; else project, location and the
            Vertex deploy settings.
        deploy_first: Whether register_version left the version for the deploy to promote
            (False: production moved since the gate compared, nothing to release).
        reason: Why the Vertex deploy runs or is skipped, in words.

    Returns:
        Whether the deploy_to_vertex branch runs.
    """
    from adaptune.step_errors import reported
    from adaptune.vertex.deploy_settings import wants_vertex_deploy as decide

    with reported("wants_vertex_deploy"):
        wanted, why = decide(vertex_deploy, deploy_first)
    print(why)
    with open(reason, "w", encoding="utf-8") as f:
        f.write(why)
    return wanted
