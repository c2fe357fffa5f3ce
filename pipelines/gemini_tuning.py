"""The managed Gemini DAG (vertex_gemini): validate → tune → evaluate → gate → register if passed.

The same steps as the adapter pipeline where they apply: validate-dataset checks every record
and passes-gate decides, unchanged; tune-gemini checks Gemini tuning's limits, uploads the data
and runs Vertex AI's tuning job; evaluate asks the tuned endpoint, the base model and the
production version with generateContent and scores them with the same metrics; register-version
records a version of kind ``vertex_gemini`` (the tuned model and endpoint, no weights),
imports its evaluation into the tuned model's Vertex AI Model Registry entry and promotes it.
tune-gemini outputs the tuned model and its endpoint as ``google.VertexModel`` and
``google.VertexEndpoint`` artifacts, so Vertex AI's lineage graph links them to the data.
``adaptune run --backend vertex_gemini`` (and ``vertex submit``/``schedule create`` with it)
runs this file, ``compiled/gemini_tuning.yaml``.

Defaults mirror the library's (a test keeps them in sync); nothing here reads the environment.
"""

from kfp import dsl

from components.evaluate_gemini import evaluate
from components.passes_gate import passes_gate
from components.register_gemini_version import register_version
from components.tune_gemini import tune_gemini
from components.validate_dataset import validate_dataset
from pipelines.adapter_tuning import DEFAULT_DATA, DEFAULT_GATE

PIPELINE_NAME = "gemini-tuning"
VALIDATION_TOKENIZER = "builtin:tiny-gpt2"
"""The tokenizer validate-dataset counts tokens with for the generic length checks (Gemini's
is not public; tune-gemini checks Gemini's own limits with estimated tokens)."""
DEFAULT_GEMINI_DATA = {**DEFAULT_DATA, "max_input_tokens": 131072, "max_output_tokens": 131072}
"""The generic length checks stay out of the way: Gemini's limits decide (in tune-gemini)."""


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Tune a Gemini model with Vertex AI's managed tuning, evaluate it against the "
    "base model and the version in production, and make it the new production version only if "
    "it passes the gate.",
)
def gemini_tuning(
    train_data: str,
    eval_data: str = "",
    data: dict = DEFAULT_GEMINI_DATA,
    gate: dict = DEFAULT_GATE,
    model_name: str = "gemini",
    registry_dir: str = "registry",
    run_id: str = "",
    vertex_gemini: dict = {},  # noqa: B006 (a kfp default, never mutated)
):
    """Tune Gemini on Vertex AI, evaluate, and (if the gate passes) register it as production.

    Args:
        train_data: Training data: a file, glob or gs:// URI; JSONL (Vertex text, Gemini chat,
            OpenAI chat, prompt/completion), CSV or Parquet.
        eval_data: Optional eval data in the same forms; empty to hold out data.eval_fraction
            of train by content hash.
        data: Data settings (as the adapter pipeline's; the token limits are Gemini's, checked
            in tune-gemini).
        gate: metric (exact_match, rouge_l, bleu or chrf), threshold, min_improvement and
            tolerance.
        model_name: Name of the model in the registry.
        registry_dir: Registry root directory.
        run_id: Run id stored with the version and the job's labels; the job name when empty.
        vertex_gemini: project, location, api_endpoint (private endpoints, tests),
            pipeline_root (gs:// for the data; default the pipeline's root) and the tuning
            settings: base_model, epochs, learning_rate_multiplier, adapter_size, display_name,
            poll_seconds, concurrency, max_attempts, max_failed_fraction, max_output_tokens,
            temperature.
    """
    validation = validate_dataset(
        train_data=train_data, eval_data=eval_data, base_model=VALIDATION_TOKENIZER, data=data
    )
    validation.set_caching_options(False)
    data_sha256 = validation.outputs["data_sha256"]
    tuning = tune_gemini(
        dataset=validation.outputs["dataset"],
        data_sha256=data_sha256,
        data=data,
        vertex_gemini=vertex_gemini,
        run_id=run_id,
        pipeline_job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
        pipeline_root=dsl.PIPELINE_ROOT_PLACEHOLDER,
    )
    # No automatic retry: a retry after a job that ended FAILED or EXPIRED would start (and
    # pay for) another job. A run whose task died while its job ran is resumed instead
    # (`adaptune run --resume`): the same run id finds the same job and waits on it.
    scoring = evaluate(
        dataset=validation.outputs["dataset"],
        tuned_model=tuning.outputs["tuned_model"],
        data=data,
        vertex_gemini=vertex_gemini,
        gate=gate,
        model_name=model_name,
        registry_dir=registry_dir,
    )
    scoring.set_caching_options(False)  # it reads the registry's production version
    gate_check = passes_gate(
        tuned_score=scoring.outputs["tuned_score"],
        base_score=scoring.outputs["base_score"],
        production_score=scoring.outputs["production_score"],
        production_version=scoring.outputs["production_version"],
        gate=gate,
    )
    gate_check.set_caching_options(False)
    with dsl.If(gate_check.outputs["Output"] == True, name="gate-passed"):  # noqa: E712
        registration = register_version(
            tuned_model=tuning.outputs["tuned_model"],
            eval_metrics=scoring.outputs["eval_metrics"],
            model_name=model_name,
            registry_dir=registry_dir,
            data_sha256=data_sha256,
            run_id=run_id,
            pipeline_job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            gate_reason=gate_check.outputs["reason"],
            production_version=scoring.outputs["production_version"],
            vertex_gemini=vertex_gemini,
        )
        registration.set_caching_options(False)
