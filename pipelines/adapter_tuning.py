"""The adapter tuning DAG: validate → format → tune → evaluate → gate → release (if it passes).

The release is a sub-DAG you can see: register the version → ask whether a Vertex AI deploy was
requested → deploy to Vertex AI. Without a Vertex deploy, register-version also promotes the
version (one atomic write) and the deploy shows skipped, not a green task that did nothing. With
one, register-version registers it unpromoted and deploy-to-vertex promotes it only once it
serves (undoing the deploy if production moved meanwhile): a failed deploy publishes nothing.

Defaults mirror the library's (a test keeps them in sync); nothing here reads the environment.
"""

from kfp import dsl

from components.deploy_to_vertex import deploy_to_vertex
from components.evaluate import evaluate
from components.format_text_to_text import format_text_to_text
from components.images import IMAGE
from components.passes_gate import passes_gate
from components.register_version import register_version
from components.tune_adapter import tune_adapter
from components.validate_dataset import validate_dataset
from components.wants_vertex_deploy import wants_vertex_deploy

PIPELINE_NAME = "adapter-tuning"
DEFAULT_PROMPT_TEMPLATE = "{input_text}\n### Response:\n"
DEFAULT_ADAPTER = {
    "method": "lora",
    "r": 8,
    "alpha": 16.0,
    "dropout": 0.0,
    "target_modules": "all-linear",
    "use_rslora": False,
    "use_dora": False,
    "quantize": "none",
}
DEFAULT_TRAINING = {
    "steps": 300,
    "epochs": 1,
    "learning_rate": 0.003,
    "batch_size": 16,
    "grad_accum": 1,
    "schedule": "linear",
    "warmup_fraction": 0.05,
    "max_grad_norm": 1.0,
    "max_length": 256,
    "max_batch_tokens": 4096,
    "packing": False,
    "precision": "auto",
    "attention": "auto",
    "eval_every": 50,
    "patience": 0,
    "checkpoint_every": 50,
    "divergence_factor": 10.0,
    "gradient_checkpointing": "auto",
    "compile": False,
    "processes": 0,
    "device_memory_gib": 0.0,
}
DEFAULT_GATE = {
    "metric": "exact_match",
    "threshold": 0.6,
    "min_improvement": 0.1,
    "tolerance": 0.0,
}
DEFAULT_EVALUATION = {
    "max_new_tokens": 0,
    "temperature": 0.0,
    "batch_size": 32,
    "seed": 0,
    "report_examples": 20,
    "max_length": 256,
    "precision": "auto",
    "attention": "auto",
}
DEFAULT_DATA = {
    "format": "auto",
    "input_column": "input_text",
    "output_column": "output_text",
    "max_input_tokens": 4096,
    "max_output_tokens": 1024,
    "length_policy": "reject",
    "min_examples": 16,
    "max_examples": 0,
    "max_invalid_fraction": 0.0,
    "eval_fraction": 0.2,
    "prompt_format": "auto",
    "system_instruction": "",
}


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Tune a LoRA adapter on text-to-text data, evaluate it against the base model "
    "and the version in production, and make it the new production version only if it passes "
    "the gate.",
)
def adapter_tuning(
    train_data: str,
    eval_data: str = "",
    base_model: str = "builtin:tiny-gpt2",
    prompt_template: str = DEFAULT_PROMPT_TEMPLATE,
    data: dict = DEFAULT_DATA,
    adapter: dict = DEFAULT_ADAPTER,
    training: dict = DEFAULT_TRAINING,
    seed: int = 0,
    gate: dict = DEFAULT_GATE,
    evaluation: dict = DEFAULT_EVALUATION,
    model_name: str = "adapter",
    registry_dir: str = "registry",
    run_id: str = "",
    description: str = "",
    vertex_deploy: dict = {},  # noqa: B006 (a kfp default, never mutated)
):
    """Tune, evaluate and (if the gate passes) register an adapter as the production version.

    Args:
        train_data: Training data: a file, glob or gs:// URI; JSONL (Vertex text, Gemini chat,
            OpenAI chat, prompt/completion), CSV or Parquet.
        eval_data: Optional eval data in the same forms; empty to hold out data.eval_fraction
            of train by content hash.
        base_model: builtin:tiny-gpt2, builtin:tiny-t5 or a Hugging Face checkpoint directory.
        prompt_template: Text with {input_text} where the input goes.
        data: Data settings: format, input_column, output_column, max_input_tokens,
            max_output_tokens, length_policy, min_examples, max_examples,
            max_invalid_fraction, eval_fraction, prompt_format (auto, template or chat: the
            base model's chat template) and system_instruction.
        adapter: Adapter method and settings: method (lora, prompt_tuning, ia3, last_layers)
            plus that method's keys (lora: r, alpha, dropout, target_modules, use_rslora,
            use_dora; prompt_tuning: num_virtual_tokens, init; ia3: target_modules,
            feedforward_modules; last_layers: num_layers), and quantize (none, 4bit or 8bit:
            a bitsandbytes-quantised base; not for last_layers).
        training: steps (0: use epochs), epochs, learning_rate, batch_size, grad_accum,
            schedule, warmup_fraction, max_grad_norm, max_length, eval_every, patience,
            checkpoint_every, divergence_factor, gradient_checkpointing, processes (per
            machine; 0: one per GPU), device_memory_gib (the fit check's device memory; 0: ask
            the device).
        seed: Random seed for adapter init, batch order and dropout.
        gate: metric (exact_match, rouge_l, bleu or chrf), threshold, min_improvement and
            tolerance (how far below the production version's score the tuned one may be).
        evaluation: max_new_tokens (0: longest reference + margin), temperature (0: greedy),
            batch_size, seed, report_examples, max_length.
        model_name: Name of the model in the registry.
        registry_dir: Registry root directory.
        run_id: Run id stored with the version; the pipeline job name when empty.
        description: What the version is for (at most 2000 characters), stored with it.
        vertex_deploy: Empty for the local registry only; else project, location
            (pipeline_root or artifact_prefix) and endpoint, traffic_percentage, machine_type,
            accelerator_type, accelerator_count, min_replicas, max_replicas, serving_image to
            also deploy the version to a Vertex AI endpoint, promoting it only once it serves
            (serving_image defaults to the compile profile's image).
    """
    validation = validate_dataset(
        train_data=train_data, eval_data=eval_data, base_model=base_model, data=data
    )
    validation.set_caching_options(False)
    data_sha256 = validation.outputs["data_sha256"]
    formatting = format_text_to_text(
        dataset=validation.outputs["dataset"],
        data_sha256=data_sha256,
        prompt_template=prompt_template,
        base_model=base_model,
        data=data,
        training=training,
    )
    tuning = tune_adapter(
        formatted=formatting.outputs["formatted"],
        data_sha256=data_sha256,
        base_model=base_model,
        adapter=adapter,
        training=training,
        seed=seed,
    )
    tuning.set_retry(num_retries=2)  # a retried task resumes from its last checkpoint
    scoring = evaluate(
        formatted=formatting.outputs["formatted"],
        trained_adapter=tuning.outputs["trained_adapter"],
        base_model=base_model,
        prompt_style=formatting.outputs["prompt_style"],
        gate=gate,
        evaluation=evaluation,
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
    # Each decision is its task's single "Output": kfp.local resolves only that name in dsl.If.
    with dsl.If(gate_check.outputs["Output"] == True, name="gate-passed"):  # noqa: E712
        registration = register_version(
            trained_adapter=tuning.outputs["trained_adapter"],
            eval_metrics=scoring.outputs["eval_metrics"],
            model_name=model_name,
            registry_dir=registry_dir,
            base_model=base_model,
            prompt_template=prompt_template,
            prompt_style=formatting.outputs["prompt_style"],
            data_sha256=data_sha256,
            run_id=run_id,
            description=description,
            pipeline_job_name=dsl.PIPELINE_JOB_NAME_PLACEHOLDER,
            gate_reason=gate_check.outputs["reason"],
            production_version=scoring.outputs["production_version"],
            vertex_deploy=vertex_deploy,
        )
        registration.set_caching_options(False)
        vertex_check = wants_vertex_deploy(
            vertex_deploy=vertex_deploy, deploy_first=registration.outputs["deploy_first"]
        )
        vertex_check.set_caching_options(False)
        with dsl.If(vertex_check.outputs["Output"] == True, name="vertex-deploy"):  # noqa: E712
            deployment = deploy_to_vertex(
                model_name=model_name,
                registry_dir=registry_dir,
                trained_adapter=tuning.outputs["trained_adapter"],
                version=registration.outputs["version"],
                vertex_deploy=vertex_deploy,
                serving_image=IMAGE,  # the compile profile puts its own image here
                production_version=scoring.outputs["production_version"],
            )
            deployment.set_caching_options(False)
