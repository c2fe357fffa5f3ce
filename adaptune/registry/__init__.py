"""The model registry: immutable versions, ``production``/``previous`` aliases, atomic writes."""

from adaptune.registry.aliases import promote, promote_gated, read_aliases, rollback
from adaptune.registry.index import BrokenRecord, list_models, read_index
from adaptune.registry.local import (
    ModelSurvey,
    RegisteredVersion,
    Registration,
    find_production,
    list_versions,
    register_and_promote,
    register_version,
    resolve_version,
    survey_model,
    verify_version,
)
from adaptune.registry.refs import ALIASES, check_model_name, parse_model_ref
from adaptune.registry.version_lineage import LINEAGE_FILE, read_version_lineage

__all__ = [
    "ALIASES",
    "LINEAGE_FILE",
    "BrokenRecord",
    "ModelSurvey",
    "RegisteredVersion",
    "Registration",
    "check_model_name",
    "find_production",
    "list_models",
    "list_versions",
    "parse_model_ref",
    "promote",
    "promote_gated",
    "read_aliases",
    "read_index",
    "read_version_lineage",
    "register_and_promote",
    "register_version",
    "resolve_version",
    "rollback",
    "survey_model",
    "verify_version",
]
