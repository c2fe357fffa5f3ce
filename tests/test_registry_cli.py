import json
import os

import pytest
from click.testing import CliRunner

from adaptune.cli import main
from adaptune.registry import read_aliases, register_version


@pytest.fixture
def registry(tmp_path):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "adapter_model.safetensors").write_bytes(os.urandom(64))
    reg = tmp_path / "reg"
    for run in ("run-a", "run-b"):
        register_version(
            reg,
            "router",
            adapter,
            {"run_id": run, "data_sha256": "ab" * 32, "metrics": {"tuned_exact_match": 0.8}},
            promote=True,
        )
    return reg


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_models_list_and_show(registry):
    listed = invoke("models", "list", "--registry-dir", registry, "--json")
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.output) == [
        {"model": "router", "versions": [1, 2], "aliases": {"production": 2, "previous": 1}}
    ]
    table = invoke("models", "show", "router", "--registry-dir", registry)
    assert table.exit_code == 0
    assert "run-a" in table.output and "production" in table.output
    one = invoke("models", "show", "router@production", "--registry-dir", registry)
    record = json.loads(one.output)
    assert (record["version"], record["run_id"], record["aliases"]) == (2, "run-b", "production")


def test_promote_and_rollback_commands(registry):
    rolled = invoke("rollback", "router", "--registry-dir", registry)
    assert rolled.exit_code == 0, rolled.output
    assert "production → v1, previous → v2" in rolled.output
    assert read_aliases(registry, "router") == {"production": 1, "previous": 2}
    promoted = invoke("models", "promote", "router@v2", "--registry-dir", registry)
    assert promoted.exit_code == 0
    assert read_aliases(registry, "router") == {"production": 2, "previous": 1}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("models", "show", "nope"), "no model 'nope'"),
        (("models", "show", "../etc"), "invalid model name"),
        (("promote", "router"), "say which version"),
        (("promote", "router@v9"), "no version v9"),
        (("rollback", "router@v1"), "takes a model name"),
    ],
)
def test_user_errors_exit_cleanly(registry, args, message):
    result = invoke(*args, "--registry-dir", registry)
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
