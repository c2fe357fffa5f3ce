"""The whole DAG, run from the committed compiled YAML with kfp.local, three cases."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import COMPILED, SAMPLE
from fastapi.testclient import TestClient
from peft import PeftModel

from adaptune.base_models import load_base_model
from adaptune.cli import main
from adaptune.registry import list_versions, read_aliases
from adaptune.runner.params import declared_parameters, resolve_params
from adaptune.runner.run import run_local
from adaptune.serving.app import create_app
from adaptune.serving.settings import ServeSettings

pytestmark = pytest.mark.pipeline


def _params(tmp_path: Path, **overrides) -> dict:
    values = {
        "train_data": str(SAMPLE / "train.jsonl"),
        "eval_data": str(SAMPLE / "eval.jsonl"),
        "training": {"steps": 150},
        "model_name": "router",
        "registry_dir": str(tmp_path / "registry"),
        "gate": {"threshold": 0.3},
    } | overrides
    return resolve_params(declared_parameters(COMPILED), {}, values, tmp_path)


def test_sample_run_registers_a_loadable_adapter(tmp_path):
    params = _params(tmp_path)
    run = run_local(COMPILED, params, tmp_path / "runs")
    assert run.succeeded, run.error
    summary = run.summary
    assert summary["records"] == {"train": 400, "eval": 80}
    assert summary["metrics"]["tuned"]["exact_match"] > summary["metrics"]["base"]["exact_match"]
    assert summary["gate"]["passed"] is True
    assert summary["registry"]["model_ref"] == "router@v1"
    (version,) = list_versions(tmp_path / "registry", "router")
    assert version.metadata["run_id"] == run.run_id
    assert version.metadata["data_sha256"] == summary["data_sha256"]
    base = load_base_model("builtin:tiny-gpt2")
    model = PeftModel.from_pretrained(base.model, str(version.path))
    assert any("lora_A" in name for name, _ in model.named_parameters())
    adapter_dir = Path(summary["outputs"]["adapter"])
    assert (adapter_dir / "adapter_model.safetensors").read_bytes() == (
        version.path / "adapter_model.safetensors"
    ).read_bytes()
    saved = json.loads((run.run_dir / "summary.json").read_text())
    assert saved["gate"]["reason"].startswith("passed:")
    # The release sub-DAG: registered and promoted; without vertex_deploy the Vertex AI deploy
    # is skipped, visibly, not a green task that did nothing.
    statuses = {t["task"]: t["status"] for t in saved["tasks"]}
    assert statuses["register-version"] == statuses["wants-vertex-deploy"] == "succeeded"
    assert statuses["deploy-to-vertex"] == "skipped"
    assert "local registry only" in saved["vertex"]["reason"]
    assert saved["vertex"]["deployed"] is False
    assert "no production version" in saved["gate"]["reason"]
    assert version.metadata["prompt_template"] == params["prompt_template"]
    assert read_aliases(tmp_path / "registry", "router") == {"production": 1}

    # The registered version, served: the endpoint answers an eval prompt as the evaluation did.
    first = json.loads(Path(summary["outputs"]["predictions"]).read_text().splitlines()[0])
    raw_input = first["prompt"].removesuffix("\n### Response:\n")
    with TestClient(create_app(ServeSettings(registry_dir=tmp_path / "registry"))) as client:
        reply = client.post(
            "/v1/endpoints/router:predict", json={"instances": [{"prompt": raw_input}]}
        )
    assert reply.status_code == 200, reply.text
    assert reply.json()["predictions"][0]["content"] == first["tuned"]
    assert reply.json()["modelVersionId"] == "1"

    # A weaker challenger (2 steps) beats base but not production v1: nothing is registered.
    weak = _params(
        tmp_path, training={"steps": 2}, gate={"threshold": 0.0, "min_improvement": -1.0}
    )
    second = run_local(COMPILED, weak, tmp_path / "runs")
    assert second.succeeded, second.error
    challenger = second.summary
    assert challenger["production"]["version"] == 1
    assert challenger["production"]["metrics"]["exact_match"] == pytest.approx(
        summary["metrics"]["tuned"]["exact_match"]
    )
    assert challenger["gate"]["passed"] is False
    assert "< production v1" in challenger["gate"]["reason"]
    assert challenger["registry"] is None
    assert [v.version for v in list_versions(tmp_path / "registry", "router")] == [1]
    assert read_aliases(tmp_path / "registry", "router") == {"production": 1}


def test_unreachable_threshold_skips_the_release_and_records_why(tmp_path):
    params = _params(tmp_path, gate={"threshold": 1.01})
    run = run_local(COMPILED, params, tmp_path / "runs")
    assert run.succeeded, run.error
    summary = run.summary
    assert summary["gate"]["passed"] is False
    assert "< threshold 1.0100" in summary["gate"]["reason"]
    assert summary["registry"] is None
    statuses = {t["task"]: t["status"] for t in summary["tasks"]}
    assert statuses["passes-gate"] == "succeeded"
    release = ("register-version", "wants-vertex-deploy", "deploy-to-vertex")
    assert {statuses[t] for t in release} == {"skipped"}
    assert not list_versions(tmp_path / "registry", "router")
    saved = json.loads((run.run_dir / "summary.json").read_text())
    assert saved["gate"]["reason"] == summary["gate"]["reason"]


def test_malformed_dataset_fails_at_validation_via_the_cli(tmp_path):
    bad = tmp_path / "bad.jsonl"
    good = (SAMPLE / "train.jsonl").read_text().splitlines(True)[:30]
    bad.write_text(
        "".join(good[:11]) + '{"input_text": "refund", "output": "billing"}\n' + "".join(good[11:])
    )
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--train-data",
            str(bad),
            "--registry-dir",
            str(tmp_path / "registry"),
            "--runs-dir",
            str(tmp_path / "runs"),
            "--train-steps",
            "5",
        ],
    )
    assert result.exit_code == 1, result.output
    assert "FAILED at step validate-dataset" in result.output
    assert f"{bad}:12: missing field 'output_text'" in result.output
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    assert not list(run_dir.glob("pipeline/*/tune-adapter"))
    assert not list(run_dir.glob("pipeline/*/format-text-to-text"))
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["failed_step"] == "validate-dataset"
    assert f"{bad}:12: missing field 'output_text'" in manifest["error"]
    shown = CliRunner().invoke(
        main, ["runs", "show", run_dir.name, "--runs-dir", str(tmp_path / "runs")]
    )
    assert shown.exit_code == 0, shown.output
    tasks = {t["type"]: t["status"] for t in json.loads(shown.output)["tasks"]}
    assert tasks == {"validate-dataset": "failed"}
    assert json.loads(shown.output)["failed_step"] == "validate-dataset"


def test_bad_parameters_are_refused_before_anything_runs(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "run",
            "--train-data",
            str(SAMPLE / "train.jsonl"),
            "--adapter",
            '{"r": 0}',
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
    )
    assert result.exit_code == 2
    assert "adapter.r must be an integer from 1 to" in result.output
    assert not (tmp_path / "runs").exists()
