"""Stage local input files to Cloud Storage and point the pipeline's parameters at them.

Components open their inputs as files; on Vertex AI every bucket the job can read is mounted
at ``/gcs/BUCKET`` (Cloud Storage FUSE), so a staged ``gs://B/P`` is passed as ``/gcs/B/P``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from adaptune.errors import UserError
from adaptune.hashing import sha256_file, sha256_named_files

if TYPE_CHECKING:
    from google.cloud import storage

INPUT_PARAMS = ("train_data", "eval_data")
FUSE_ROOT = "/gcs/"


@dataclass(frozen=True)
class StagedInputs:
    """Pipeline parameters ready for Vertex AI.

    Attributes:
        params: The parameters, with input files and the registry on ``/gcs/`` paths.
        uploads: For each staged parameter, the ``gs://`` URI it was uploaded to.
        data_sha256: sha256 of the local input files (``adaptune.hashing``); empty when no
            input was a local file.
    """

    params: dict[str, Any]
    uploads: dict[str, str]
    data_sha256: str


def split_gs_uri(uri: str) -> tuple[str, str]:
    """Split ``gs://bucket/path`` into bucket and path.

    Raises:
        UserError: If ``uri`` is not a ``gs://`` URI with a bucket.
    """
    if not uri.startswith("gs://") or not uri[5:].split("/", 1)[0]:
        raise UserError(f"not a gs:// URI: {uri!r}")
    bucket, _, path = uri[5:].partition("/")
    return bucket, path.strip("/")


def to_fuse_path(uri: str) -> str:
    """Map ``gs://bucket/path`` to the Cloud Storage FUSE path ``/gcs/bucket/path``."""
    bucket, path = split_gs_uri(uri)
    return f"{FUSE_ROOT}{bucket}/{path}".rstrip("/")


def plan_inputs(params: dict[str, Any], pipeline_root: str) -> tuple[dict[str, Path], StagedInputs]:
    """Decide what to upload where, without any network call.

    Local input files go to ``<pipeline_root>/inputs/<sha256 prefix>/<file name>``, so an
    unchanged file is uploaded once. A ``registry_dir`` that is not on Cloud Storage becomes
    ``<pipeline_root>/registry``: a local directory would vanish with the task's container.

    Args:
        params: Resolved pipeline parameters (local paths absolute).
        pipeline_root: The job's ``gs://`` pipeline root.

    Returns:
        The local files to upload by parameter, and the staged parameters.

    Raises:
        UserError: If a local input file does not exist.
    """
    root = pipeline_root.rstrip("/")
    out = dict(params)
    files: dict[str, Path] = {}
    uploads: dict[str, str] = {}
    for name in INPUT_PARAMS:
        value = str(params.get(name) or "")
        if not value or value.startswith(FUSE_ROOT):
            continue
        if value.startswith("gs://"):
            out[name] = to_fuse_path(value)
            continue
        path = Path(value)
        if not path.is_file():
            raise UserError(f"{name}: file not found: {path}")
        sha = sha256_file(path)
        uri = f"{root}/inputs/{sha[:16]}/{path.name}"
        files[name] = path
        uploads[name] = uri
        out[name] = to_fuse_path(uri)
    if "registry_dir" in params:
        registry = str(params.get("registry_dir") or "")
        if registry.startswith("gs://"):
            out["registry_dir"] = to_fuse_path(registry)
        elif not registry.startswith(FUSE_ROOT):
            out["registry_dir"] = to_fuse_path(f"{root}/registry")
    return files, StagedInputs(
        out, uploads, sha256_named_files((p.name, p) for p in files.values()) if files else ""
    )


def upload_inputs(
    client: storage.Client, files: dict[str, Path], uploads: dict[str, str]
) -> list[str]:
    """Upload each file to its URI unless an object is already there; return the new URIs.

    Raises:
        UserError: If a bucket does not exist.
    """
    written = []
    for name, path in files.items():
        bucket_name, blob_name = split_gs_uri(uploads[name])
        bucket = client.lookup_bucket(bucket_name)
        if bucket is None:
            raise UserError(
                f"bucket gs://{bucket_name} not found; create it first "
                f"(gcloud storage buckets create gs://{bucket_name} --location REGION)"
            )
        blob = bucket.blob(blob_name)
        if blob.exists():
            continue
        blob.upload_from_filename(str(path), if_generation_match=0)
        written.append(uploads[name])
    return written


def check_bucket(client: storage.Client, bucket_name: str) -> None:
    """Fail with a clear message when the pipeline root's bucket does not exist.

    Checking first also keeps the Vertex SDK from creating a bucket in a default location.

    Raises:
        UserError: If the bucket does not exist.
    """
    if client.lookup_bucket(bucket_name) is None:
        raise UserError(
            f"bucket gs://{bucket_name} not found; create it first "
            f"(gcloud storage buckets create gs://{bucket_name} --location REGION)"
        )
