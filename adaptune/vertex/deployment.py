"""Deploy a registry version on Vertex AI: stage its files, upload a model version, serve it.

The steps are cheap to repeat: staged files live at a content-addressed path and are not
uploaded twice, a version already uploaded from the same registry version and run is reused,
the endpoint is found by display name before one is created, and a version already on the
endpoint is not deployed again. So after a failure, running the deploy again finishes the job;
the error says which resources already exist.

What serves never changes half-way: the deployment and its traffic split are one Vertex AI
operation, and a deploy that fails after Vertex AI applied it (the operation's answer lost, say)
is undone (the new deployment undeployed, the endpoint's traffic split restored). An uploaded
version or an endpoint created on the way serve nothing and are left for the next attempt.

The pipeline's release (``release_registered_version``) deploys a version registered but not yet
promoted, then promotes it locally with the gate's compare-and-set; when that promotion is
refused (production moved meanwhile) or fails, the deployment is undone, so a release either
publishes everywhere or nowhere.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptune.atomic import write_json_atomic
from adaptune.errors import UserError
from adaptune.hashing import sha256_named_files
from adaptune.kill_points import kill_point
from adaptune.registry.index import INDEX_FILE
from adaptune.registry.pending_release import (
    PendingRelease,
    pending_release_path,
    read_pending_release,
    remove_pending_release,
    write_pending_release,
)
from adaptune.vertex import endpoints, model_registry, staging
from adaptune.vertex.deploy_settings import VertexDeploySettings
from adaptune.vertex.google_errors import google_errors
from adaptune.vertex.jobs import init_vertex
from adaptune.vertex.model_evaluation import import_version_evaluation
from adaptune.vertex.settings import VertexSettings
from adaptune.vertex.submission import storage_client

if TYPE_CHECKING:
    from google.auth.credentials import Credentials
    from google.cloud import storage

    from adaptune.registry.local import RegisteredVersion

BeforeDeploy = Callable[[Any, Any, dict[str, int], set[str]], None]
"""``before_deploy(endpoint, uploaded_model, traffic_split, deployed_model_ids)``."""


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
        previous_traffic_split: The endpoint's traffic split before the deploy (what undoing
            it restores).
        serving: ``adaptune`` or ``vllm`` (``vertex_deploy.serving``).
        adapter_uri: With ``vllm``: the adapter's ``gs://`` directory that requests name.
        evaluation: The model version's evaluation holding the registry version's metrics,
            ``.../models/ID@VERSION/evaluations/EID`` (empty: no metrics, or ``vllm``, whose
            model version serves every adapter of a base model).
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
    previous_traffic_split: dict[str, int] = field(default_factory=dict)
    serving: str = "adaptune"
    adapter_uri: str = ""
    evaluation: str = ""

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
    before_deploy: BeforeDeploy | None = None,
) -> VertexDeployment:
    """Upload a registry version to the Vertex AI Model Registry and deploy it to an endpoint.

    1. Stage the version's files to ``settings.artifact_root(vertex.pipeline_root)``.
    2. Upload them as the new default version of the Vertex model for ``version.model`` (found by
       its ``adaptune-model`` label; created on the first deploy), labelled with the run id and
       the data hash (see :mod:`adaptune.vertex.lineage`), unless that registry version and
       run were uploaded before.
       Import the version's evaluation metrics into that model version (once; see
       :mod:`adaptune.vertex.model_evaluation`), so the console shows them beside it.
    3. Find the endpoint ``settings.endpoint_name(version.model)`` or create it.
    4. Deploy the version with ``settings.traffic_percentage`` of the traffic.

    The SDK's global configuration is pointed at ``vertex`` first (``jobs.init_vertex``).
    With ``settings.serving`` ``vllm`` the version is served by its base model's vLLM
    endpoint instead (``vllm_deployment.deploy_with_vllm``).

    Args:
        version: The registry version (``registry.local.RegisteredVersion``).
        vertex: Project, region, API endpoint, extra labels, CMEK key.
        settings: Endpoint, traffic, machine and serving image.
        credentials: Credentials (default: Application Default Credentials).
        before_deploy: Called with the endpoint, the uploaded model version, the endpoint's
            traffic split and deployed model ids right before the deployment is made (the
            release records them there, see ``registry.pending_release``).

    Returns:
        The resource names and what was created.

    Raises:
        UserError: On invalid settings, a missing bucket, an ambiguous model or endpoint name,
            or when a step after the upload fails (the message names what exists).
    """
    from adaptune.registry.kinds import ADAPTER, version_kind

    if version_kind(version.metadata) != ADAPTER:  # a managed Gemini model is served already
        raise UserError(
            f"{version.ref} is a {version_kind(version.metadata)} version: Vertex AI serves it on "
            f"its own endpoint ({version.metadata.get('tuned_model', {}).get('endpoint', '?')}); "
            "there is no adapter to deploy"
        )
    if settings.serving == "vllm":
        from adaptune.vertex.vllm_deployment import deploy_with_vllm

        return deploy_with_vllm(version, vertex, settings, credentials, before_deploy)
    if not settings.serving_image:
        raise UserError("serving_image must not be empty")
    validate_accelerator(settings)
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
    except call_errors() as exc:
        raise UserError(
            f"uploading {version.ref} to the Vertex AI Model Registry failed: {exc}. "
            "Nothing was deployed; running the deploy again reuses what was staged."
        ) from exc
    try:
        evaluation = import_version_evaluation(uploaded, version)
    except call_errors() as exc:
        raise UserError(
            f"{version.ref} is uploaded as {uploaded.versioned_resource_name}, but importing "
            f"its evaluation metrics failed: {exc}. Nothing was deployed; running the deploy "
            "again reuses that version."
        ) from exc
    endpoint_name = settings.endpoint_name(version.model)
    endpoint = None
    previous: dict[str, int] = {}
    before: set[str] = set()
    try:
        endpoint, endpoint_created = endpoints.find_or_create_endpoint(
            vertex, endpoint_name, credentials
        )
        previous = dict(endpoint.gca_resource.traffic_split)
        before = {d.id for d in endpoint.gca_resource.deployed_models}
        if before_deploy is not None:
            before_deploy(endpoint, uploaded, previous, before)
        deployed = endpoints.deploy_version(
            endpoint, uploaded, settings, f"{version.model}-v{version.version}"
        )
    except (*call_errors(), UserError) as exc:
        where = endpoint.resource_name if endpoint else f"endpoint {endpoint_name!r}"
        undone = (
            undo_failed_deploy(endpoint.resource_name, uploaded, before, previous)
            if endpoint
            else ""
        )
        raise UserError(
            f"{version.ref} is uploaded as {uploaded.versioned_resource_name}, but deploying "
            f"it to {where} failed: {exc}.{undone} Running the deploy again reuses that version"
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
        previous_traffic_split=previous,
        evaluation=evaluation or "",
    )


def validate_accelerator(settings: VertexDeploySettings) -> None:
    """Refuse an accelerator type Vertex AI does not know, before anything is uploaded.

    Raises:
        UserError: Naming the accelerator types there are.
    """
    from google.cloud.aiplatform import utils

    if settings.accelerator_type:
        try:
            utils.validate_accelerator_type(settings.accelerator_type)
        except ValueError as exc:
            raise UserError(f"accelerator_type: {exc}") from None


def call_errors() -> tuple[type[Exception], ...]:
    """What a failed call to Google Cloud raises: API and auth errors, transport errors."""
    import requests

    return (*google_errors(), ValueError, requests.RequestException)


def _undeploy(endpoint_name: str, deployed_model_id: str, traffic_split: dict[str, int]) -> None:
    """Undeploy one deployed model and set the endpoint's traffic split, in one operation."""
    from google.cloud import aiplatform

    endpoint = aiplatform.Endpoint(endpoint_name)
    operation = endpoint.api_client.undeploy_model(
        endpoint=endpoint_name, deployed_model_id=deployed_model_id, traffic_split=traffic_split
    )
    operation.result()


def undo_failed_deploy(
    endpoint_name: str, model: Any, before: set[str], previous: dict[str, int]
) -> str:
    """After a failed deploy: undeploy what it deployed anyway, restoring the traffic split.

    Vertex AI may have applied a deployment whose answer never arrived (a lost or failed
    operation poll). The endpoint is read again; a deployment of ``model`` that was not there
    before is undeployed with the previous traffic split. Returns a sentence for the error.
    """
    from google.cloud import aiplatform

    try:
        endpoint = aiplatform.Endpoint(endpoint_name)
        stray = [
            d.id
            for d in endpoint.gca_resource.deployed_models
            if d.id not in before
            and d.model == model.resource_name
            and d.model_version_id == model.version_id
        ]
        for deployed_model_id in stray:
            _undeploy(endpoint_name, deployed_model_id, previous)
    except call_errors() as exc:
        return (
            f" Checking that nothing was deployed failed too ({exc}): look at {endpoint_name}'s "
            f"deployed models; its traffic split before was {previous or 'empty'}."
        )
    if stray:
        return (
            f" Vertex AI had deployed it anyway ({', '.join(stray)}): undeployed again, "
            f"the traffic split is as before ({previous or 'empty'})."
        )
    return " Nothing was deployed: the endpoint's traffic split is as before."


def _without(split: dict[str, int], deployed_model_id: str) -> dict[str, int]:
    """``split`` without one deployed model, the rest scaled back to 100 (largest remainder)."""
    rest = {k: v for k, v in split.items() if k != deployed_model_id and v > 0}
    total = sum(rest.values())
    if not total:
        return {}
    shares = {k: v * 100 / total for k, v in rest.items()}
    scaled = {k: int(v) for k, v in shares.items()}
    for k in sorted(shares, key=lambda k: shares[k] - scaled[k], reverse=True)[
        : 100 - sum(scaled.values())
    ]:
        scaled[k] += 1
    return scaled


def undo_deployment(deployment: VertexDeployment, ours: bool = False) -> str:
    """Undo what a deploy changed on the endpoint; a sentence saying what was done.

    The deployed model is undeployed and the endpoint's traffic split set back to what it was
    before (one operation). A version that was on the endpoint before the deploy is left as it
    is, unless ``ours`` says an earlier attempt of the same release put it there (a retried
    release): then it is undeployed and the others' shares scaled back to 100. The uploaded
    model version and the endpoint are left (they serve nothing by themselves).

    Raises:
        UserError: If undeploying fails (the message says what still serves).
    """
    if deployment.already_deployed and not ours:
        return (
            f"{deployment.model_version} was on {deployment.endpoint} before this deploy: "
            "left as it was"
        )
    restored = (
        _without(deployment.traffic_split, deployment.deployed_model_id)
        if deployment.already_deployed
        else deployment.previous_traffic_split
    )
    kill_point("release:before-undo")
    try:
        _undeploy(deployment.endpoint, deployment.deployed_model_id, restored)
    except call_errors() as exc:
        raise UserError(
            f"undeploying {deployment.model_version} (deployed model "
            f"{deployment.deployed_model_id}) from {deployment.endpoint} failed: {exc}; it "
            f"still serves {deployment.traffic_split.get(deployment.deployed_model_id, 0)}% "
            f"of the traffic: undeploy it by hand (the split before was "
            f"{restored or 'empty'})"
        ) from exc
    kill_point("release:after-undo")
    return (
        f"its Vertex AI deployment was undone: {deployment.endpoint}'s traffic split is "
        f"{restored or 'empty'}, as before"
    )


def deploy_registered_version(
    registry_dir: Path,
    model: str,
    version: int,
    vertex_deploy: dict[str, Any],
    serving_image: str,
    before_deploy: BeforeDeploy | None = None,
) -> VertexDeployment:
    """Serve ``model@v<version>`` as the pipeline's ``vertex_deploy`` dict says (no alias moves).

    Args:
        registry_dir: Registry root.
        model: Registry model name.
        version: The version the register step made.
        vertex_deploy: The pipeline's dict: project, location (and the other
            ``VertexSettings`` keys) plus the ``VertexDeploySettings``.
        serving_image: The compile profile's image, used unless the dict names one.
        before_deploy: As for ``deploy_to_vertex``.

    Raises:
        UserError: On invalid settings, a version whose files fail their checksums, or a
            failed deploy (naming what exists).
    """
    from adaptune.registry.local import resolve_version, verify_version
    from adaptune.vertex.deploy_settings import check_vertex_deploy

    checked = check_vertex_deploy(vertex_deploy)
    if checked is None:
        raise UserError("vertex_deploy is empty: nothing says where to deploy")
    where, how = checked
    registered = resolve_version(registry_dir, model, f"v{version}")
    verify_version(registered)
    return deploy_to_vertex(
        registered, where, how.with_serving_image(serving_image), before_deploy=before_deploy
    )


@dataclass(frozen=True)
class Release:
    """What the pipeline's release did on Vertex AI and in the local registry.

    Attributes:
        deployment: What the deploy made or found (undone again when not promoted).
        promoted: Whether local ``production`` now points at the version.
        note: Why it was not promoted, and what was undone (empty when it was).
    """

    deployment: VertexDeployment
    promoted: bool
    note: str = ""


def release_registered_version(
    registry_dir: Path,
    model: str,
    version: int,
    vertex_deploy: dict[str, Any],
    serving_image: str,
    evaluated_against: int,
) -> Release:
    """The release's Vertex AI step: deploy the registered version, then promote it locally.

    The version was registered without promotion. An interrupted release of another version of
    the model is settled first (``settle_pending_release``). Right before the deployment is
    made, a pending-release record is written in the model's directory
    (``registry.pending_release``); the version is deployed; only then does ``production`` move
    to it, with the gate's compare-and-set against ``evaluated_against``
    (``registry.promote_gated``). If production moved meanwhile, the deployment is undone and
    the version stays registered, unpromoted (as a release without Vertex AI leaves it); if the
    promotion fails, the deployment is undone and the error raised. The record is removed once
    the version is production or its deployment undone. So a failure at any step leaves the
    local aliases where they were and the endpoint's traffic as it was, and a kill leaves the
    record saying what to settle.

    Raises:
        UserError: On a failed deploy (nothing serves it), a failed promotion (its deployment
            undone, or the message says what still serves), or another release of the model
            under way.
    """
    from adaptune.registry.aliases import promote_gated
    from adaptune.vertex.deploy_settings import check_vertex_deploy

    checked = check_vertex_deploy(vertex_deploy)
    if checked is None:
        raise UserError("vertex_deploy is empty: nothing says where to deploy")
    where = checked[0]
    earlier = _settle_before_release(registry_dir, model, version)

    def record(endpoint: Any, uploaded: Any, previous: dict[str, int], before: set[str]) -> None:
        # A resumed release keeps what the endpoint held before its first attempt deployed.
        kept = (
            earlier if earlier is not None and earlier.endpoint == endpoint.resource_name else None
        )
        write_pending_release(
            registry_dir,
            PendingRelease(
                model=model,
                version=version,
                run_id=_run_id_of(registry_dir, model, version),
                endpoint=endpoint.resource_name,
                vertex_model=uploaded.resource_name,
                vertex_version_id=str(uploaded.version_id),
                deployed_before=kept.deployed_before if kept else sorted(before),
                traffic_split_before=kept.traffic_split_before if kept else previous,
                project=where.project,
                location=where.location,
                api_endpoint=where.api_endpoint,
            ),
        )
        kill_point("release:after-record")

    try:
        deployment = deploy_registered_version(
            registry_dir, model, version, vertex_deploy, serving_image, before_deploy=record
        )
    except UserError:
        _settle_quietly(registry_dir, model, version)  # a failed deploy left nothing serving
        raise
    kill_point("release:after-deploy")
    try:
        promoted, note = promote_gated(registry_dir, model, version, evaluated_against)
    except UserError as exc:
        raise UserError(
            f"{exc}; {_undo_quietly(registry_dir, model, deployment, version)}"
        ) from None
    except BaseException:
        _undo_quietly(registry_dir, model, deployment, version)
        raise
    if promoted:
        remove_pending_release(registry_dir, model, version)
        return Release(deployment, True)
    # The version is this run's, registered unpromoted: a deployment of it found on the
    # endpoint was made by an earlier attempt of this release (killed before it finished).
    undone = undo_deployment(deployment, ours=True)
    remove_pending_release(registry_dir, model, version)
    return Release(deployment, False, f"{note}; {undone}")


def _run_id_of(registry_dir: Path, model: str, version: int) -> str:
    from adaptune.registry.local import resolve_version

    return str(resolve_version(registry_dir, model, f"v{version}").metadata.get("run_id", ""))


def _undo_quietly(
    registry_dir: Path, model: str, deployment: VertexDeployment, version: int
) -> str:
    """``undo_deployment`` (of this release's deployment), its failure told, not raised.

    The pending-release record is removed once the deployment is undone; when undoing fails it
    stays, so that the next release settles what still serves.
    """
    try:
        undone = undo_deployment(deployment, ours=True)
    except UserError as exc:
        return str(exc)
    remove_pending_release(registry_dir, model, version)
    return undone


def _settle_before_release(registry_dir: Path, model: str, version: int) -> PendingRelease | None:
    """Before a release: settle another version's interrupted release; return this one's.

    Returns:
        The record of an earlier, interrupted attempt of this same release (a retried task or
        a resumed run: what it deployed is completed, not undone), or None.

    Raises:
        UserError: If another release of the model is under way (its process is alive), its
            record is unreadable, or settling it fails.
    """
    pending = read_pending_release(registry_dir, model)
    if pending is None:
        return None
    if pending.version == version:
        return pending
    if not pending.interrupted():
        raise UserError(
            f"another release of {model} is under way ({pending.ref}, run {pending.run_id}, "
            f"process {pending.pid} on {pending.host} since {pending.started_at}): run this "
            "release again once it has finished (adaptune run --resume)"
        )
    settle_pending_release(registry_dir, pending)
    return None


def _settle_quietly(registry_dir: Path, model: str, version: int) -> None:
    """After a failed deploy: settle this release's record if Vertex AI can be asked now."""
    try:
        pending = read_pending_release(registry_dir, model)
        if pending is not None and pending.version == version:
            settle_pending_release(registry_dir, pending)
    except UserError:
        pass  # the record stays: the next release, or this run's end, settles it


def settle_pending_release(
    registry_dir: Path, pending: PendingRelease, credentials: Credentials | None = None
) -> str:
    """Settle an interrupted release so that the endpoint and ``production`` agree.

    When its version is production, the release was complete: the record is removed. Otherwise
    every deployment of its uploaded model version that was not on the endpoint before is
    undeployed, the traffic split set back to what it was before (or, when the endpoint's
    deployed models changed since, the others' shares scaled back to 100), and the record is
    removed. Nothing else is touched: the uploaded model version and the endpoint are left.

    Returns:
        What was done, in a sentence.

    Raises:
        UserError: If Vertex AI cannot be asked or the undeploy fails (the record stays).
    """
    from google.api_core.exceptions import NotFound
    from google.cloud import aiplatform

    from adaptune.registry.aliases import read_aliases

    if read_aliases(registry_dir, pending.model).get("production") == pending.version:
        remove_pending_release(registry_dir, pending.model, pending.version)
        return f"{pending.ref} is production: its interrupted release was complete"
    try:
        init_vertex(
            VertexSettings(
                project=pending.project or pending.endpoint.split("/")[1],
                location=pending.location or pending.endpoint.split("/")[3],
                api_endpoint=pending.api_endpoint,
            ),
            credentials,
        )
        try:
            endpoint = aiplatform.Endpoint(pending.endpoint)
        except NotFound:
            stray: list[str] = []
        else:
            deployed = endpoint.gca_resource.deployed_models
            stray = [
                d.id
                for d in deployed
                if d.id not in pending.deployed_before
                and d.model == pending.vertex_model
                and d.model_version_id == pending.vertex_version_id
            ]
            split = dict(endpoint.gca_resource.traffic_split)
            others = {d.id for d in deployed} - set(stray)
            for deployed_model_id in stray:
                restored = (  # the endpoint holds what it held before: that split again
                    pending.traffic_split_before
                    if others == set(pending.deployed_before)
                    else _without(split, deployed_model_id)
                )
                kill_point("release:before-settle")
                _undeploy(pending.endpoint, deployed_model_id, restored)
                split = restored
    except (*call_errors(), UserError, IndexError) as exc:
        raise UserError(
            f"settling the interrupted release of {pending.ref} to {pending.endpoint} "
            f"(run {pending.run_id}) failed: {exc}; "
            f"{pending_release_path(registry_dir, pending.model)} stays until it is settled"
        ) from exc
    remove_pending_release(registry_dir, pending.model, pending.version)
    if not stray:
        return f"the interrupted release of {pending.ref} had deployed nothing"
    return (
        f"the interrupted release of {pending.ref} (run {pending.run_id}) was undone: "
        f"{', '.join(stray)} undeployed from {pending.endpoint}, its traffic split "
        f"{split or 'empty'}"
    )
