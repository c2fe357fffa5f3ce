"""Each component through ``.python_func`` with real artifacts on tmp_path."""

import json
from pathlib import Path

import pytest
from kfp.dsl import HTML, Dataset, Metrics, Model

from adaptune.registry import read_aliases
from components.evaluate import evaluate
from components.format_text_to_text import format_text_to_text
from components.passes_gate import passes_gate
from components.register_version import register_version
from components.tune_adapter import tune_adapter
from components.validate_dataset import validate_dataset
from components.wants_vertex_deploy import wants_vertex_deploy


def _artifact(cls, path: Path):
    artifact = cls(uri=str(path))
    artifact.path = str(path)  # local paths, as kfp.local gives them
    return artifact


def test_validate_then_format(sample_dir, tmp_path):
    dataset = _artifact(Dataset, tmp_path / "dataset")
    report = _artifact(HTML, tmp_path / "report.html")
    out = validate_dataset.python_func(
        train_data=str(sample_dir / "train.jsonl"),
        eval_data=str(sample_dir / "eval.jsonl"),
        base_model="builtin:tiny-gpt2",
        data={"min_examples": 16.0, "max_input_tokens": 512.0},
        dataset=dataset,
        report=report,
    )
    assert (out.train_records, out.eval_records) == (400, 80)
    assert dataset.metadata["data_sha256"] == out.data_sha256
    assert dataset.metadata["passed"] is True
    assert dataset.metadata["problem_counts"] == {}
    assert dataset.metadata["labels"]["billing"] == 96
    assert set(dataset.metadata["token_lengths"]["input"]) >= {"p5", "p50", "p95", "max"}
    page = Path(report.path).read_text()
    assert "<h1>Data validation: PASSED</h1>" in page and "Output labels" in page
    formatted = _artifact(Dataset, tmp_path / "formatted")
    counts = format_text_to_text.python_func(
        dataset=dataset,
        data_sha256=out.data_sha256,
        prompt_template="{input_text}\nTeam:",
        base_model="builtin:tiny-gpt2",
        data={"eval_fraction": 0.2},
        training={},
        formatted=formatted,
    )
    assert (counts.train_examples, counts.eval_examples) == (400, 80)
    assert formatted.metadata["split"] == "file"
    # the built-in model has no chat template: auto is the template format
    assert counts.prompt_style == {
        "format": "template",
        "template": "{input_text}\nTeam:",
        "system_instruction": "",
        "chat_template_sha256": "",
    }


def test_validate_failure_exits_with_a_clear_message(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"input_text": "x"}\n')
    with pytest.raises(SystemExit) as info:
        validate_dataset.python_func(
            train_data=str(bad),
            eval_data="",
            base_model="builtin:tiny-gpt2",
            data={},
            dataset=_artifact(Dataset, tmp_path / "d"),
            report=_artifact(HTML, tmp_path / "report.html"),
        )
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert f"{bad}:1: missing field 'output_text' [missing_field]" in err
    assert "Traceback" not in err
    assert not (tmp_path / "d").exists() and not (tmp_path / "report.html").exists()


@pytest.mark.slow  # trains a model (10 s with its fixture): not in make test-fast
def test_tune_evaluate_gate_register(trained_adapter, tmp_path):
    formatted = _artifact(Dataset, trained_adapter["formatted"])
    adapter = _artifact(Model, tmp_path / "adapter")
    training_metrics = _artifact(Metrics, tmp_path / "training_metrics")
    report = _artifact(HTML, tmp_path / "report.html")
    losses = tune_adapter.python_func(
        formatted=formatted,
        data_sha256="abc",
        base_model="builtin:tiny-gpt2",
        adapter={"method": "lora", "r": 8.0, "alpha": 16.0},
        training={"steps": 60.0, "eval_every": 20.0, "checkpoint_every": 25.0},
        seed=0,
        trained_adapter=adapter,
        training_metrics=training_metrics,
        training_report=report,
    )
    assert losses.final_loss < losses.first_loss
    assert training_metrics.metadata["steps"] == 60
    history = json.loads(Path(training_metrics.path).read_text())["losses"]
    assert len(history) == 60 and history[0] == losses.first_loss
    assert training_metrics.metadata["eval_loss"] > 0
    assert "<img" in Path(report.path).read_text()
    assert (Path(adapter.path) / "adapter_model.safetensors").is_file()

    gate = {"metric": "exact_match", "threshold": 0.0, "min_improvement": 0.0}
    registry = tmp_path / "registry"

    def champion_challenger(round_: int):
        eval_metrics = _artifact(Metrics, tmp_path / f"eval_metrics{round_}")
        scores = evaluate.python_func(
            formatted=formatted,
            trained_adapter=adapter,
            base_model="builtin:tiny-gpt2",
            prompt_style={"format": "template", "template": "{input_text}"},
            gate=gate,
            evaluation={"report_examples": 5.0},
            model_name="router",
            registry_dir=str(registry),
            predictions=_artifact(Dataset, tmp_path / f"pred{round_}.jsonl"),
            report=_artifact(HTML, tmp_path / f"eval{round_}.html"),
            eval_metrics=eval_metrics,
        )
        assert scores.tuned_score == eval_metrics.metadata["tuned_exact_match"]
        assert scores.base_score == eval_metrics.metadata["base_exact_match"]
        assert "<table" in Path(tmp_path / f"eval{round_}.html").read_text()
        reason_file = tmp_path / f"reason{round_}"
        decision = passes_gate.python_func(
            tuned_score=scores.tuned_score,
            base_score=scores.base_score,
            production_score=scores.production_score,
            production_version=scores.production_version,
            gate=gate,
            reason=str(reason_file),
        )
        assert decision is True
        assert reason_file.read_text().startswith("passed:")
        registered = register_version.python_func(
            trained_adapter=adapter,
            eval_metrics=eval_metrics,
            model_name="router",
            registry_dir=str(registry),
            base_model="builtin:tiny-gpt2",
            prompt_template="{input_text}",
            prompt_style={"format": "template", "template": "{input_text}"},
            data_sha256="abc",
            run_id="",
            pipeline_job_name=f"job-{round_}",
            gate_reason="ok",
            production_version=scores.production_version,
            vertex_deploy={},
            description=f"round {round_}",
        )
        return scores, eval_metrics, registered, reason_file.read_text()

    # first run: nothing in production yet
    scores, _, registered, reason = champion_challenger(1)
    assert (scores.production_version, scores.production_score) == (0, 0.0)
    assert "no production version" in reason
    assert (registered.version, registered.model_ref) == (1, "router@v1")
    assert (registered.promoted, registered.note) == (True, "")
    meta = json.loads((registry / "router/v1/version.json").read_text())
    assert meta["run_id"] == "job-1" and meta["data_sha256"] == "abc"
    assert meta["metrics"]["tuned_exact_match"] == scores.tuned_score
    assert meta["prompt_template"] == "{input_text}"
    assert meta["prompt_style"]["format"] == "template"

    # second run: the same adapter challenges v1, in production, and ties with it
    scores, eval_metrics, registered, reason = champion_challenger(2)
    assert scores.production_version == 1
    assert scores.production_score == scores.tuned_score
    assert eval_metrics.metadata["production_exact_match"] == scores.production_score
    assert "production v1" in reason
    assert registered.model_ref == "router@v2"
    assert read_aliases(registry, "router") == {"production": 2, "previous": 1}


def test_gate_says_no_with_a_reason(tmp_path):
    reason = tmp_path / "reason"
    assert (
        passes_gate.python_func(
            tuned_score=0.5,
            base_score=0.0,
            production_score=0.9,
            production_version=3,
            gate={"threshold": 0.99},
            reason=str(reason),
        )
        is False
    )
    assert "0.5000 < threshold 0.9900" in reason.read_text()
    assert "tuned 0.5000 < production v3 0.9000 - tolerance 0.0000" in reason.read_text()


def test_vertex_deploy_is_asked_only_with_settings_and_a_version_left_to_it(tmp_path):
    reason = tmp_path / "reason"
    settings = {
        "project": "p",
        "location": "europe-west4",
        "endpoint": "router",
        "pipeline_root": "gs://b/root",
    }
    asked = wants_vertex_deploy.python_func
    assert asked(vertex_deploy={}, deploy_first=False, reason=str(reason)) is False
    assert "local registry only" in reason.read_text()
    assert asked(vertex_deploy=settings, deploy_first=False, reason=str(reason)) is False
    assert "not promoted" in reason.read_text()
    assert asked(vertex_deploy=settings, deploy_first=True, reason=str(reason)) is True
    assert reason.read_text() == "deploy to Vertex AI (p/europe-west4), then promote"


def test_vertex_deploy_settings_are_checked_before_the_deploy_branch(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        wants_vertex_deploy.python_func(
            vertex_deploy={"project": "p", "traffic": 10},
            deploy_first=True,
            reason=str(tmp_path / "reason"),
        )
    assert exit_.value.code == 1
    assert "unknown vertex_deploy setting(s) ['traffic']" in capsys.readouterr().err

