"""The tuning component starts one process per GPU itself; on CPU, two gloo processes."""

import json
from pathlib import Path

import pytest
import torch
from kfp.dsl import HTML, Dataset, Metrics, Model
from safetensors.torch import load_file
from ticket_rows import TICKETS

from adaptune.errors import UserError
from adaptune.tuning.processes import Cluster, cluster_from_env, process_count, torchrun_command
from components.tune_adapter import tune_adapter


def _artifact(cls, path: Path):
    artifact = cls(uri=str(path))
    artifact.path = str(path)
    return artifact


def _formatted(root: Path, rows: list[dict]) -> Path:
    formatted = root / "formatted"
    formatted.mkdir(parents=True)
    (formatted / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (formatted / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:8]))
    return formatted


def _run_component(root: Path, formatted: Path, training: dict):
    outputs = {
        "trained_adapter": _artifact(Model, root / "adapter"),
        "training_metrics": _artifact(Metrics, root / "metrics"),
        "training_report": _artifact(HTML, root / "report.html"),
    }
    losses = tune_adapter.python_func(
        formatted=_artifact(Dataset, formatted),
        data_sha256="abc",
        base_model="builtin:tiny-gpt2",
        adapter={"method": "lora", "r": 8},
        training=training,
        seed=0,
        **outputs,
    )
    return losses, outputs


@pytest.mark.slow  # two gloo processes and one plain run of the component (about 30 s)
def test_the_component_in_two_processes_trains_as_one_process_with_accumulation(tmp_path):
    formatted = _formatted(tmp_path, TICKETS)
    common = {"steps": 8, "batch_size": 4, "eval_every": 4, "checkpoint_every": 0}
    two, two_out = _run_component(tmp_path / "two", formatted, {**common, "processes": 2})
    one, one_out = _run_component(
        tmp_path / "one", formatted, {**common, "processes": 1, "grad_accum": 2}
    )
    a = load_file(Path(two_out["trained_adapter"].path) / "adapter_model.safetensors")
    b = load_file(Path(one_out["trained_adapter"].path) / "adapter_model.safetensors")
    assert a.keys() == b.keys() and a
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert two.first_loss == pytest.approx(one.first_loss, abs=1e-5)
    assert two.final_loss == pytest.approx(one.final_loss, abs=1e-5)
    two_history = json.loads(Path(two_out["training_metrics"].path).read_text())
    one_history = json.loads(Path(one_out["training_metrics"].path).read_text())
    assert two_history["losses"] == pytest.approx(one_history["losses"], abs=1e-5)
    assert len(two_history["losses"]) == 8 and two_history["eval_losses"]
    for name in ("train_tokens", "steps", "eval_loss"):
        assert two_out["training_metrics"].metadata[name] == pytest.approx(
            one_out["training_metrics"].metadata[name], rel=1e-6
        )
    assert "<img" in Path(two_out["training_report"].path).read_text()
    assert not list((tmp_path / "two").glob(".*tuning-result*"))  # the hand-over file is gone


@pytest.mark.slow  # starts two processes (about 15 s)
def test_a_user_error_in_the_processes_is_the_tasks_one_line_error(tmp_path, capsys):
    formatted = _formatted(tmp_path, TICKETS)
    training = {"steps": 2, "batch_size": 4, "processes": 2, "max_length": 8}
    (formatted / "train.jsonl").write_text("")  # no training examples
    with pytest.raises(SystemExit) as exited:
        _run_component(tmp_path / "run", formatted, training)
    assert exited.value.code == 1
    err = capsys.readouterr().err
    assert "no training examples" in err
    marker = json.loads((tmp_path / "run" / "adapter-user-error.json").read_text())
    assert "no training examples" in marker["message"]


def test_processes_default_to_one_per_gpu_and_are_bounded_by_them():
    assert process_count(0, 0) == 1
    assert process_count(0, 4) == 4
    assert process_count(2, 0) == 2  # CPU: gloo
    assert process_count(4, 8) == 4
    with pytest.raises(UserError, match=r"training\.processes is 8 but this machine has 4 GPU"):
        process_count(8, 4)


def test_processes_is_a_checked_training_setting():
    from adaptune.tuning.settings import TrainingSettings

    assert TrainingSettings().processes == 0
    with pytest.raises(UserError, match=r"training\.processes"):
        TrainingSettings.from_dict({"processes": -1})


def test_vertex_pytorch_variables_give_the_machines():
    env = {"MASTER_ADDR": "workerpool0-0", "MASTER_PORT": "2222", "WORLD_SIZE": "2", "RANK": "1"}
    assert cluster_from_env(env) == Cluster(2, 1, "workerpool0-0", 2222)
    assert cluster_from_env({"WORLD_SIZE": "1", "RANK": "0", "MASTER_ADDR": "x"}) == Cluster()
    assert cluster_from_env({}) == Cluster()


def test_the_cluster_spec_gives_the_machines_without_the_pytorch_variables():
    spec = {
        "cluster": {
            "workerpool0": ["cmle-training-workerpool0-ab-0:2222"],
            "workerpool1": [
                "cmle-training-workerpool1-ab-0:2222",
                "cmle-training-workerpool1-ab-1:2222",
            ],
        },
        "environment": "cloud",
        "task": {"type": "workerpool1", "index": 1},
    }
    cluster = cluster_from_env({"CLUSTER_SPEC": json.dumps(spec)})
    assert cluster == Cluster(3, 2, "cmle-training-workerpool0-ab-0", 2222)
    assert not cluster.first
    spec["task"] = {"type": "workerpool0", "index": 0}
    assert cluster_from_env({"CLUSTER_SPEC": json.dumps(spec)}).first
    single = {"cluster": {"workerpool0": ["h:2222"]}, "task": {"type": "workerpool0", "index": 0}}
    assert cluster_from_env({"CLUSTER_SPEC": json.dumps(single)}) == Cluster()


def test_torchrun_joins_the_first_machine_on_several_and_stands_alone_on_one():
    several = torchrun_command(4, Cluster(2, 1, "host0", 2222), ["--train", "t"])
    assert several[1:3] == ["-m", "torch.distributed.run"]
    joined = " ".join(several)
    assert "--nnodes 2 --node_rank 1 --master_addr host0 --master_port 2222" in joined
    assert joined.endswith("--nproc_per_node 4 -m adaptune.tuning --train t")
    assert "--standalone" not in several
    assert "--standalone" in torchrun_command(2, Cluster(), [])
