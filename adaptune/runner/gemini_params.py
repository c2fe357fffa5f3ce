"""The gemini pipeline's parameters, checked before anything runs (backend ``vertex_gemini``).

``runner.params.resolve_params`` merges and type-checks every pipeline's parameters; a
pipeline with a ``vertex_gemini`` parameter (``compiled/gemini_tuning.yaml``) then comes here
instead of the adapter checks: the data and gate settings, the data files, the registry, the
``vertex_gemini`` dict (project and location filled from ``ADAPTUNE_PROJECT`` and
``ADAPTUNE_LOCATION`` when it leaves them out) and, for a run on this machine, credentials.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adaptune.data.settings import DataSettings
from adaptune.evaluation.gate import GateSettings
from adaptune.registry.refs import check_model_name
from adaptune.vertex.gemini_backend import check_vertex_gemini, with_defaults
from adaptune.vertex.gemini_settings import check_gemini_credentials

GEMINI_PARAM = "vertex_gemini"


def is_gemini_pipeline(params: dict[str, Any]) -> bool:
    """Whether these are the gemini pipeline's parameters."""
    return GEMINI_PARAM in params


def check_gemini_params(
    params: dict[str, Any],
    local: bool,
    check_data: Callable[[str, str], None],
    check_dir: Callable[[str, str], None],
) -> dict[str, Any]:
    """Check the gemini pipeline's parameters; return them with ``vertex_gemini`` filled in.

    Args:
        params: Every parameter, merged and type-checked.
        local: Whether the pipeline runs here (then credentials and a local registry are
            checked, and the data needs a gs:// ``vertex_gemini.pipeline_root`` unless an
            ``api_endpoint`` is given).
        check_data: ``check_data_path(name, value)`` of the runner.
        check_dir: ``check_writable_dir(name, value)`` of the runner.

    Raises:
        UserError: One line naming the parameter or setting.
    """
    params = dict(params)
    params[GEMINI_PARAM] = with_defaults(params[GEMINI_PARAM])
    GateSettings.from_dict(params["gate"])
    DataSettings.from_dict(params["data"])
    check_model_name(params["model_name"])
    target, settings = check_vertex_gemini(params[GEMINI_PARAM], local=local)
    # Every setting explicit: the manifest records the base model and hyperparameters used.
    params[GEMINI_PARAM] = {**params[GEMINI_PARAM], **settings.to_dict()}
    for name in ("train_data", "eval_data"):
        check_data(name, params[name])
    if local:
        check_dir("registry_dir", params["registry_dir"])
        check_gemini_credentials(target.project, target.location)
    return params
