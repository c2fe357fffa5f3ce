"""The data contract through the whole compiled DAG: multi-turn chat data read from gs://."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import BUCKET, COMPILED

from adaptune.runner.params import declared_parameters, resolve_params
from adaptune.runner.run import run_local

pytestmark = pytest.mark.pipeline


def _conversation(i: int) -> dict:
    team = ("billing", "shipping", "technical")[i % 3]
    return {
        "messages": [
            {"role": "system", "content": "Route the ticket to a team."},
            {"role": "user", "content": f"Hello, ticket {i} here."},
            {"role": "assistant", "content": "How can I help?", "weight": 0},
            {"role": "user", "content": f"Problem {i} with my {team} matter."},
            {"role": "assistant", "content": team},
            {"role": "user", "content": f"Ticket {i}: which team again?"},
            {"role": "assistant", "content": team},
        ]
    }


def test_chat_data_on_gs_runs_through_the_dag(gcs, tmp_path):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    body = "".join(json.dumps(_conversation(i)) + "\n" for i in range(24))
    bucket = storage.Client(project="test", credentials=AnonymousCredentials()).bucket(BUCKET)
    bucket.blob("chat/train.jsonl").upload_from_string(body.encode())
    values = {
        "train_data": f"{gcs}/chat/*.jsonl",
        "training": {"steps": 5},
        "data": {"eval_fraction": 0.25},
        "prompt_template": "User: {input_text}\nAgent:",
        "registry_dir": str(tmp_path / "registry"),
        "gate": {"threshold": 1.01},
    }
    params = resolve_params(declared_parameters(COMPILED), {}, values, tmp_path)
    run = run_local(COMPILED, params, tmp_path / "runs")
    assert run.succeeded, run.error
    summary = run.summary
    assert summary["records"] == {"train": 48, "eval": 0}
    assert summary["examples"]["train"] + summary["examples"]["eval"] == 48
    assert summary["examples"]["eval"] > 0
    assert summary["gate"]["passed"] is False
    formatted = Path(summary["outputs"]["formatted data"])
    pairs = [
        json.loads(line)
        for split in ("train", "eval")
        for line in (formatted / f"{split}.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert {
        "prompt": "Route the ticket to a team.\nUser: Hello, ticket 0 here.\n"
        "Agent:How can I help?\nUser: Problem 0 with my billing matter.\nAgent:",
        "target": "billing",
    } in pairs
    report = Path(summary["outputs"]["validated data"]).with_name("report")
    assert "Data validation: PASSED" in report.read_text(encoding="utf-8")
