"""The model registry: immutable versions, ``production``/``previous`` aliases, atomic writes."""

from adaptune.registry.aliases import promote, read_aliases, rollback
from adaptune.registry.index import list_models, read_index
from adaptune.registry.local import (
    Deployment,
    RegisteredVersion,
    deploy_version,
    find_production,
    list_versions,
    register_version,
    resolve_version,
)
from adaptune.registry.refs import ALIASES, check_model_name, parse_model_ref

__all__ = [
    "ALIASES",
    "Deployment",
    "RegisteredVersion",
    "check_model_name",
    "deploy_version",
    "find_production",
    "list_models",
    "list_versions",
    "parse_model_ref",
    "promote",
    "read_aliases",
    "read_index",
    "register_version",
    "resolve_version",
    "rollback",
]
