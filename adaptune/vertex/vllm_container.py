"""Vertex AI Model Garden's vLLM serving container: its model upload, and what it can serve.

``vertex_deploy.serving: vllm`` serves adapters with Google's build of vLLM instead of
``adaptune serve``. One deployment of the base model (its weights read from Cloud Storage)
serves every LoRA adapter of that base: each request names its adapter's Cloud Storage
directory in the instance's ``dynamic-lora`` field, and the container loads it on first use.

Sources (read 2026; the container's own request code is not public, so its request shape is
known from Google's notebooks only):

* Container, arguments, routes and the ``dynamic-lora`` request field: Google's Model Garden
  notebooks, ``deploy_model_vllm()`` and the predict cells of
  https://github.com/GoogleCloudPlatform/vertex-ai-samples/blob/main/notebooks/community/model_garden/model_garden_vllm_text_only_tutorial.ipynb
  and ``model_garden_huggingface_vllm_deployment.ipynb`` (same directory; the image tag below
  is the newest those notebooks pin). The notebooks start ``python -m
  vllm.entrypoints.api_server`` with ``--model=gs://...``, port 8080, predict route
  ``/generate``, health route ``/ping`` and the environment ``MODEL_ID`` and
  ``DEPLOY_SOURCE``; a request is ``{"instances": [{"prompt", "max_tokens", "temperature",
  "top_p", "top_k", "raw_response", "dynamic-lora": "gs://..."}]}`` and each prediction is a
  string (the bare output when ``raw_response`` is true).
* vLLM's LoRA limits: ``vllm/config/lora.py`` (``MaxLoRARanks = Literal[1, 8, 16, 32, 64,
  128, 256, 320, 512]``, ``max_lora_rank`` default 16, ``max_loras`` default 1,
  ``max_cpu_loras`` >= ``max_loras``), https://docs.vllm.ai/en/v0.14.0/api/vllm/config/lora/,
  and ``vllm/lora/peft_helper.py`` (``_validate_features``: "vLLM only supports
  modules_to_save being None", "vLLM does not yet support DoRA", ``bias`` must be ``none``).

Where the sources say nothing, adaptune chooses (and the README says so): the notebooks never
pass ``--max-lora-rank``, so it is always passed, sized from the adapter; the prompt is sent
rendered as in tuning with ``raw_response`` true (``/generate`` applies no chat template in
the notebooks' prompts); target modules are not checked against the architecture (vLLM's
per-model list of LoRA-capable layers is not documented in a form to check against).
"""

from __future__ import annotations

from typing import Any

from adaptune.errors import UserError
from adaptune.hashing import sha256_json

VLLM_IMAGE = (
    "us-docker.pkg.dev/vertex-ai/vertex-vision-model-garden-dockers/"
    "pytorch-vllm-serve:20251205_0916_RC01"
)
"""The Model Garden vLLM image, at the newest tag Google's notebooks pin."""
VLLM_PREDICT_ROUTE = "/generate"
VLLM_HEALTH_ROUTE = "/ping"
VLLM_PORT = 8080
VLLM_SHARED_MEMORY_MB = 16 * 1024
VLLM_DEPLOYMENT_TIMEOUT_S = 7200
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
"""The only values vLLM's ``--max-lora-rank`` takes."""
MAX_CPU_LORAS = 8
"""Adapters kept in CPU memory (the notebooks' value; at least ``max_loras``)."""
ADAPTER_FIELD = "dynamic-lora"
"""The instance field naming the adapter's Cloud Storage directory."""
SERVING_LABEL = "adaptune-serving"
BASE_LABEL = "adaptune-base-model"
CONFIG_LABEL = "adaptune-vllm-config"


def lora_rank_for(r: int, fixed: int = 0) -> int:
    """``--max-lora-rank`` for an adapter of rank ``r``: the smallest allowed value >= ``r``.

    Args:
        r: The adapter's rank.
        fixed: ``vertex_deploy.max_lora_rank`` (0: sized from the adapter).

    Raises:
        UserError: If ``r`` is above the largest allowed value, or above ``fixed``.
    """
    if fixed:
        if r > fixed:
            raise UserError(
                f"adapter rank r={r} is above vertex_deploy.max_lora_rank={fixed}: vLLM cannot "
                "serve it; raise max_lora_rank or tune with a smaller adapter.r"
            )
        return fixed
    for rank in LORA_RANKS:
        if rank >= r:
            return rank
    raise UserError(
        f"adapter rank r={r} is above {LORA_RANKS[-1]}, the largest --max-lora-rank vLLM "
        "allows: tune with adapter.r <= 512 or use vertex_deploy.serving adaptune"
    )


def check_base_model(base_model: str) -> None:
    """Refuse a base model the vLLM container cannot read (it must be on Cloud Storage).

    Raises:
        UserError: If ``base_model`` is not a ``gs://`` checkpoint directory.
    """
    if not base_model.startswith("gs://") or len(base_model.rstrip("/")) <= len("gs://"):
        raise UserError(
            f"vertex_deploy.serving vllm needs base_model on Cloud Storage (a gs:// Hugging "
            f"Face checkpoint directory the container loads), got {base_model!r}; use "
            "vertex_deploy.serving adaptune for other base models"
        )


def check_method_servable(method: Any, base_model: str) -> None:
    """Refuse, before anything runs, an adapter method the vLLM container cannot serve.

    Args:
        method: The ``adapter`` settings (``tuning.methods.AdapterMethod``).
        base_model: The pipeline's ``base_model``.

    Raises:
        UserError: On a method other than LoRA, DoRA, a rank vLLM cannot take, or a base
            model not on Cloud Storage.
    """
    name = getattr(method, "method", "")
    if name != "lora":
        raise UserError(
            f"vertex_deploy.serving vllm serves LoRA adapters only, got adapter.method {name!r}: "
            "use adapter.method lora or vertex_deploy.serving adaptune"
        )
    if method.use_dora:
        raise UserError(
            "vertex_deploy.serving vllm cannot serve DoRA (vLLM does not support it): set "
            "adapter.use_dora false or vertex_deploy.serving adaptune"
        )
    lora_rank_for(method.r)
    check_base_model(base_model)


def check_adapter_servable(config: dict[str, Any], base_model: str, fixed_rank: int = 0) -> int:
    """Check a saved adapter (its ``adapter_config.json``) against vLLM's limits.

    Args:
        config: The adapter's ``adapter_config.json``.
        base_model: The base model it was tuned on.
        fixed_rank: ``vertex_deploy.max_lora_rank`` (0: sized from the adapter).

    Returns:
        The ``--max-lora-rank`` to start the container with.

    Raises:
        UserError: Saying why vLLM cannot serve it.
    """
    peft_type = str(config.get("peft_type") or config.get("method") or "unknown")
    if peft_type.upper() != "LORA":
        raise UserError(
            f"vLLM serves LoRA adapters only; this adapter is {peft_type}: deploy it with "
            "vertex_deploy.serving adaptune"
        )
    if config.get("use_dora"):
        raise UserError(
            "vLLM cannot serve this adapter: it is DoRA (use_dora), which vLLM does not "
            "support; deploy it with vertex_deploy.serving adaptune"
        )
    if config.get("modules_to_save"):
        raise UserError(
            f"vLLM cannot serve this adapter: it saves whole modules "
            f"(modules_to_save {config['modules_to_save']!r}), which vLLM refuses; deploy it "
            "with vertex_deploy.serving adaptune"
        )
    if config.get("bias", "none") not in (None, "none"):
        raise UserError(
            f"vLLM cannot serve this adapter: it trains biases (bias {config['bias']!r}); "
            "vLLM needs bias 'none'"
        )
    r = config.get("r")
    if type(r) is not int or r < 1:
        raise UserError(f"vLLM cannot serve this adapter: its rank r is {r!r}, not a count")
    ranks = [v for v in (config.get("rank_pattern") or {}).values() if type(v) is int]
    rank = lora_rank_for(max([r, *ranks]), fixed_rank)
    check_base_model(base_model)
    return rank


def container_args(base_model: str, max_lora_rank: int, max_loras: int) -> list[str]:
    """The container's arguments: vLLM's API server on the base model, LoRA enabled."""
    return [
        "python",
        "-m",
        "vllm.entrypoints.api_server",
        "--host=0.0.0.0",
        f"--port={VLLM_PORT}",
        f"--model={base_model}",
        "--enable-lora",
        f"--max-lora-rank={max_lora_rank}",
        f"--max-loras={max_loras}",
        f"--max-cpu-loras={max(MAX_CPU_LORAS, max_loras)}",
        "--disable-log-stats",
    ]


def container_env(base_model: str) -> dict[str, str]:
    """The container's environment, as the notebooks set it."""
    return {"MODEL_ID": base_model, "DEPLOY_SOURCE": "adaptune"}


def base_key(base_model: str) -> str:
    """A label value naming the base model: the first 16 hex digits of its URI's sha256."""
    return sha256_json(base_model.rstrip("/"))[:16]


def config_key(image: str, args: list[str]) -> str:
    """A label value naming one container configuration (image and arguments)."""
    return sha256_json({"image": image, "args": args})[:16]


def base_display_name(base_model: str) -> str:
    """``adaptune-vllm-<last path part>-<base key>``: the default model and endpoint name."""
    tail = base_model.rstrip("/").rsplit("/", 1)[-1]
    return f"adaptune-vllm-{tail[:80]}-{base_key(base_model)[:8]}"


def predict_instance(
    prompt: str,
    adapter_uri: str,
    max_tokens: int,
    temperature: float,
    top_p: float,
    top_k: int,
) -> dict[str, Any]:
    """One instance of a predict request to the container (no adapter: the base model).

    Args:
        prompt: The prompt, rendered as in tuning (the container applies no template).
        adapter_uri: The adapter's ``gs://`` directory; empty for the base model.
        max_tokens: Most tokens generated.
        temperature: 0 decodes greedily.
        top_p: Nucleus sampling threshold.
        top_k: Top-k sampling (0: off, sent as vLLM's -1).
    """
    instance: dict[str, Any] = {
        "prompt": prompt,
        "max_tokens": max_tokens,
        "temperature": temperature,
        "top_p": top_p,
        "top_k": top_k if top_k > 0 else -1,
        "raw_response": True,
    }
    if adapter_uri:
        instance[ADAPTER_FIELD] = adapter_uri
    return instance
