"""Vertex AI settings, resolved from flags, then ``ADAPTUNE_*`` variables, then a config file."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

from adaptune.errors import UserError

ENV_PREFIX = "ADAPTUNE_"
CONFIG_ENV = "ADAPTUNE_VERTEX_CONFIG"
LABEL_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE_PATTERN = re.compile(r"^[a-z0-9_-]{0,63}$")
TRUE = {"1", "true", "yes", "on"}
FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class VertexSettings:
    """Where and how a pipeline job runs on Vertex AI.

    Attributes:
        project: Google Cloud project id.
        pipeline_root: ``gs://`` directory for the pipeline's artifacts; inputs are staged below
            it in ``inputs/``. Needed to submit or schedule, not to read a job's status.
        location: Vertex AI region.
        service_account: Service account the job runs as (empty: Compute Engine default).
        network: VPC network to peer with, ``projects/NUMBER/global/networks/NAME``.
        kms_key: Cloud KMS key encrypting the job and its outputs (CMEK).
        experiment: Vertex AI experiment the run is recorded in.
        enable_caching: None (the default): each task's compiled caching option holds (off for
            the tasks that read data or the registry, or register a version; on for the
            rest). True or False applies to every task alike, overriding those options: with
            True a cached register-version would register nothing.
        labels: Extra labels for the job.
        api_endpoint: Vertex API endpoint (empty: the regional one); for private endpoints.
    """

    project: str
    pipeline_root: str = ""
    location: str = "us-central1"
    service_account: str = ""
    network: str = ""
    kms_key: str = ""
    experiment: str = ""
    enable_caching: bool | None = None
    labels: dict[str, str] = field(default_factory=dict)
    api_endpoint: str = ""

    def __post_init__(self) -> None:
        if not self.project:
            raise UserError("project is required (--project, ADAPTUNE_PROJECT or config file)")
        if self.pipeline_root and (
            not self.pipeline_root.startswith("gs://") or len(self.pipeline_root) <= len("gs://")
        ):
            raise UserError(
                f"pipeline_root must be a gs:// directory, got {self.pipeline_root!r} "
                "(--pipeline-root, ADAPTUNE_PIPELINE_ROOT or config file)"
            )
        if not self.location:
            raise UserError("location must not be empty")
        if self.kms_key and not re.match(
            r"^projects/[^/]+/locations/[^/]+/keyRings/[^/]+/cryptoKeys/[^/]+$", self.kms_key
        ):
            raise UserError(
                f"kms_key must be projects/P/locations/L/keyRings/R/cryptoKeys/K, "
                f"got {self.kms_key!r}"
            )
        check_labels(self.labels)

    def require_pipeline_root(self) -> None:
        """Fail unless a pipeline root is set (submitting and scheduling need one).

        Raises:
            UserError: If ``pipeline_root`` is empty.
        """
        if not self.pipeline_root:
            raise UserError(
                "pipeline_root is required (--pipeline-root, ADAPTUNE_PIPELINE_ROOT or config file)"
            )

    @property
    def bucket(self) -> str:
        """The pipeline root's bucket name."""
        return self.pipeline_root[len("gs://") :].split("/", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        """The settings as plain values."""
        return asdict(self)


def check_labels(labels: Mapping[str, str]) -> None:
    """Check labels against Google Cloud's rules.

    Raises:
        UserError: On a key or value Vertex AI would refuse.
    """
    for key, value in labels.items():
        if not LABEL_PATTERN.match(str(key)):
            raise UserError(
                f"label key {key!r}: lowercase letters, digits, _ and -, starting with a letter"
            )
        if not isinstance(value, str) or not LABEL_VALUE_PATTERN.match(value):
            raise UserError(
                f"label {key}={value!r}: the value must be at most 63 lowercase letters, "
                "digits, _ and -"
            )


def _parse_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise UserError(f"{name} must be true or false, got {value!r}")


def _parse_labels(name: str, value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    labels = {}
    for item in str(value).split(","):
        if not item.strip():
            continue
        key, sep, val = item.partition("=")
        if not sep:
            raise UserError(f"{name}: expected key=value[,key=value], got {item!r}")
        labels[key.strip()] = val.strip()
    return labels


def load_settings_file(path: Path) -> dict[str, Any]:
    """Read a YAML mapping of Vertex settings.

    Raises:
        UserError: If the file is missing, not YAML, not a mapping, or has unknown keys.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise UserError(f"Vertex settings file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise UserError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of Vertex settings")
    known = {f.name for f in fields(VertexSettings)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UserError(f"{path}: unknown setting(s) {unknown}; known: {sorted(known)}")
    return data


def resolve_settings(
    flags: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    config_path: Path | None = None,
) -> VertexSettings:
    """Merge settings: config file < ``ADAPTUNE_*`` environment variables < flags.

    Args:
        flags: Values from the command line (None means not given).
        env: The environment (default: ``os.environ``); ``ADAPTUNE_PROJECT`` sets ``project``.
        config_path: YAML settings file; ``ADAPTUNE_VERTEX_CONFIG`` names one when omitted.

    Returns:
        The validated settings.

    Raises:
        UserError: On a missing or invalid setting.
    """
    env = os.environ if env is None else env
    config_path = config_path or (Path(env[CONFIG_ENV]) if env.get(CONFIG_ENV) else None)
    values: dict[str, Any] = load_settings_file(config_path) if config_path else {}
    for spec in fields(VertexSettings):
        raw = env.get(ENV_PREFIX + spec.name.upper())
        if raw is not None and raw != "":
            values[spec.name] = raw
        if flags.get(spec.name) is not None:
            values[spec.name] = flags[spec.name]
    if values.get("enable_caching") is not None:
        values["enable_caching"] = _parse_bool("enable_caching", values["enable_caching"])
    if "labels" in values:
        values["labels"] = _parse_labels("labels", values["labels"])
    for name in ("project", "pipeline_root"):
        values.setdefault(name, "")
    return VertexSettings(**{k: v for k, v in values.items()})
