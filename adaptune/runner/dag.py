"""The DAG's tasks, in one table: each task's name, what it produces, and its role.

``pipelines/adapter_tuning.py`` defines the DAG; this table says what the rest of the product
relies on about it: the summary reads outputs by these names, the run's lineage record links
the data files and the registry version through the roles below, and the compile profiles give
the tasks that load model weights (``loads == MODEL``) their GPU and memory, and every other task
(tokenizer only, or no model) a small CPU machine. A test checks the table against the compiled YAML
(every task, in every sub-DAG, and every output name), so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

MODEL = "model"  # loads the base model's weights (and adapters): needs an accelerator and memory
TOKENIZER = "tokenizer"  # loads only the tokenizer: a small CPU machine


@dataclass(frozen=True)
class DagTask:
    """One task of the compiled DAG.

    Attributes:
        name: The task's name in the compiled YAML (and its output directory's, locally).
        outputs: Every output the task's component declares (artifacts and parameters),
            each with what it is in words.
        listed: The artifact outputs the run summary lists, by output name, with their label.
        kinds: Artifact outputs whose type in the lineage store is not their output name.
        reads_data: The pipeline parameters naming data files the task reads (the lineage
            record links those files to it).
        registers: Whether the task registers a registry version (its ``version`` output;
            the lineage record adds the version as its output).
        loads: What of the base model the task loads: ``MODEL`` (its weights), ``TOKENIZER``
            (only the tokenizer) or nothing (empty).
        condition: The ``dsl.If`` groups the task runs in, outermost first (empty: always runs
            unless an earlier task fails).
    """

    name: str
    outputs: dict[str, str]
    listed: dict[str, str] = field(default_factory=dict)
    kinds: dict[str, str] = field(default_factory=dict)
    reads_data: tuple[str, ...] = ()
    registers: bool = False
    loads: str = ""
    condition: tuple[str, ...] = ()


VALIDATE = DagTask(
    "validate-dataset",
    {
        "dataset": "the normalised examples (train.jsonl, eval.jsonl, dropped.jsonl)",
        "report": "the validation report (HTML)",
        "data_sha256": "sha256 of the normalised data",
        "train_records": "valid training examples",
        "eval_records": "valid eval examples",
    },
    listed={"dataset": "validated data"},
    reads_data=("train_data", "eval_data"),
    loads=TOKENIZER,
)
FORMAT = DagTask(
    "format-text-to-text",
    {
        "formatted": "prompt/target pairs (train.jsonl, eval.jsonl)",
        "train_examples": "training pairs",
        "eval_examples": "eval pairs",
        "prompt_style": "how the prompts were made (format, template, system instruction)",
    },
    listed={"formatted": "formatted data"},
    loads=TOKENIZER,
)
TUNE = DagTask(
    "tune-adapter",
    {
        "trained_adapter": "the adapter (PEFT format)",
        "training_metrics": "loss, eval loss, steps, tokens and wall time",
        "training_report": "loss curves and settings (HTML)",
        "first_loss": "loss at the first step",
        "final_loss": "mean loss over the last steps",
    },
    listed={"trained_adapter": "adapter", "training_report": "training report"},
    kinds={"trained_adapter": "adapter"},
    loads=MODEL,
)
EVALUATE = DagTask(
    "evaluate",
    {
        "predictions": "prompt, reference and each model's output (JSONL)",
        "report": "metrics and examples (HTML)",
        "eval_metrics": "every metric of every model",
        "tuned_score": "the tuned model's gate metric",
        "base_score": "the base model's gate metric",
        "production_score": "the production version's gate metric",
        "production_version": "the production version compared with (0: none)",
    },
    listed={"predictions": "predictions", "report": "eval report"},
    loads=MODEL,  # generates with the base, tuned and production models
)
GATE = DagTask(
    "passes-gate",
    {"Output": "whether the gate passed", "reason": "the comparisons behind it"},
)
GATE_PASSED = "gate-passed"
REGISTER = DagTask(
    "register-version",
    {
        "version": "the new version number",
        "model_ref": "model_name@vN",
        "promoted": "whether production now points at it",
        "note": "why it was not promoted",
        "deploy_first": "whether it waits for its Vertex AI deploy to be promoted",
    },
    registers=True,
    condition=(GATE_PASSED,),
)
VERTEX_DEPLOY = "vertex-deploy"
WANTS_VERTEX = DagTask(
    "wants-vertex-deploy",
    {"Output": "whether to deploy to Vertex AI", "reason": "why, or why not"},
    condition=(GATE_PASSED,),
)
DEPLOY = DagTask(
    "deploy-to-vertex",
    {
        "vertex_model": "the Vertex AI model version (google.VertexModel, resourceName)",
        "vertex_endpoint": "the Vertex AI endpoint serving it (google.VertexEndpoint)",
        "promoted": "whether production now points at the version (after the deploy)",
        "note": "why it was not promoted and what was undone",
    },
    condition=(GATE_PASSED, VERTEX_DEPLOY),
)
TASKS = (VALIDATE, FORMAT, TUNE, EVALUATE, GATE, REGISTER, WANTS_VERTEX, DEPLOY)
"""The adapter pipeline's tasks (``pipelines/adapter_tuning.py``), in the order they run."""

# The gemini pipeline (pipelines/gemini_tuning.py, backend vertex_gemini) shares
# validate-dataset and passes-gate, and names its evaluate and register tasks as the adapter
# pipeline does, with the same outputs: the summary and the lineage read both alike.
TUNE_GEMINI = DagTask(
    "tune-gemini",
    {
        "gemini_data": "the split examples and the Gemini JSONL uploaded for the job",
        "tuned_model": "the tuned model, its endpoint, the job and its data statistics",
        "tuning_metrics": "the job's data statistics (examples, billable tokens, ...)",
        "vertex_model": "the tuned model's Vertex AI model version (google.VertexModel)",
        "vertex_endpoint": "the Vertex AI endpoint serving it (google.VertexEndpoint)",
        "endpoint": "the Vertex AI endpoint serving the tuned model",
        "job_name": "the tuning job's resource name",
    },
    listed={"gemini_data": "Gemini data", "tuned_model": "tuned model"},
    kinds={"tuned_model": "vertex_gemini_model"},
)
EVALUATE_GEMINI = replace(EVALUATE, loads="")
"""The gemini pipeline's evaluate: the same outputs, answers from Vertex AI (no weights)."""
GEMINI_TASKS = (VALIDATE, TUNE_GEMINI, EVALUATE_GEMINI, GATE, REGISTER)
"""The gemini pipeline's tasks (``pipelines/gemini_tuning.py``), in the order they run."""
TABLES = {"adapter-tuning": TASKS, "gemini-tuning": GEMINI_TASKS}
"""Each compiled pipeline's table, by its pipeline name (``pipelineInfo.name``)."""
BY_NAME = {task.name: task for table in reversed(TABLES.values()) for task in table}
"""Every task of every pipeline by name (a name two pipelines share has the same outputs; the
adapter pipeline's entry is kept)."""


def tasks_for(spec: dict) -> tuple[DagTask, ...]:
    """The table of a compiled pipeline (parsed YAML); the adapter pipeline's by default."""
    name = ((spec or {}).get("pipelineInfo") or {}).get("name")
    return TABLES.get(name, TASKS)
