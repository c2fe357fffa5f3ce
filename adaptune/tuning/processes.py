"""One training process per GPU, started by the tuning step itself with ``torch.distributed.run``.

The tuning component calls :func:`tune_in_processes` when it is given more than one accelerator
(``training.processes``, or every visible GPU when that is 0) or runs on several machines. Each
process runs ``python -m adaptune.tuning``: today's data-parallel path
(``adaptune.tuning.distributed``), so N processes with ``grad_accum`` g train exactly as one
process with ``grad_accum`` N × g. The first process writes the adapter and a result file the
caller reads back; a user error in any process comes back as a ``UserError`` with its message.

Several machines (a Vertex AI CustomJob with more than one replica) join through torch's static
rendezvous at the first machine. Its address, the machine count and this machine's index come
from the environment Vertex AI sets: ``MASTER_ADDR``, ``MASTER_PORT``, ``WORLD_SIZE`` (machines)
and ``RANK`` (this machine), or else its ``CLUSTER_SPEC`` (worker pool 0 is the first machine,
pool 1 the others).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adaptune.atomic import write_json_atomic
from adaptune.errors import UserError
from adaptune.tuning.methods import AdapterMethod
from adaptune.tuning.settings import TrainingSettings

DEFAULT_MASTER_PORT = 29500
RESULT_FILE = "tuning-result.json"
ERROR_SUFFIX = ".error.json"


@dataclass(frozen=True)
class Cluster:
    """The machines a tuning job runs on.

    Attributes:
        nodes: Number of machines.
        node_rank: This machine's index (0: the first, which holds the rendezvous).
        master_addr: The first machine's address (empty on one machine).
        master_port: The rendezvous port on the first machine.
    """

    nodes: int = 1
    node_rank: int = 0
    master_addr: str = ""
    master_port: int = DEFAULT_MASTER_PORT

    @property
    def first(self) -> bool:
        """Whether this is the first machine (the one whose first process writes the outputs)."""
        return self.node_rank == 0


def cluster_from_env(env: Mapping[str, str] | None = None) -> Cluster:
    """The machines of this job, from the variables Vertex AI sets (one machine without them).

    ``MASTER_ADDR``/``MASTER_PORT``/``WORLD_SIZE``/``RANK`` are read first (what Vertex AI sets
    for PyTorch: ``WORLD_SIZE`` counts machines, ``RANK`` is this machine's index), else
    ``CLUSTER_SPEC``, which every replica of a Vertex AI CustomJob gets.
    """
    env = os.environ if env is None else env
    if env.get("MASTER_ADDR") and int(env.get("WORLD_SIZE", "1") or 1) > 1:
        return Cluster(
            nodes=int(env["WORLD_SIZE"]),
            node_rank=int(env.get("RANK", "0") or 0),
            master_addr=env["MASTER_ADDR"],
            master_port=int(env.get("MASTER_PORT") or DEFAULT_MASTER_PORT),
        )
    spec = env.get("CLUSTER_SPEC")
    if not spec:
        return Cluster()
    parsed = json.loads(spec)
    pools = parsed.get("cluster", {})
    first = pools.get("workerpool0", [])
    others = pools.get("workerpool1", [])
    if len(first) + len(others) <= 1:
        return Cluster()
    task = parsed.get("task", {})
    index = int(task.get("index", 0))
    node_rank = index if task.get("type") == "workerpool0" else 1 + index
    host, _, port = first[0].rpartition(":")
    return Cluster(
        nodes=len(first) + len(others),
        node_rank=node_rank,
        master_addr=host or first[0],
        master_port=int(port) if port.isdigit() else DEFAULT_MASTER_PORT,
    )


def process_count(requested: int, gpus: int) -> int:
    """Processes per machine: ``requested``, or one per GPU when 0 (one on a machine without).

    Raises:
        UserError: When more processes than GPUs are asked for on a GPU machine.
    """
    if requested == 0:
        return max(gpus, 1)
    if gpus and requested > gpus:
        raise UserError(
            f"training.processes is {requested} but this machine has {gpus} GPU(s): "
            "give at most that many, or 0 (one per GPU)"
        )
    return requested


def torchrun_command(processes: int, cluster: Cluster, tuning_args: list[str]) -> list[str]:
    """The ``torch.distributed.run`` command line that starts the processes of this machine."""
    command = [sys.executable, "-m", "torch.distributed.run", "--max_restarts", "0"]
    if cluster.nodes > 1:
        command += [
            "--nnodes",
            str(cluster.nodes),
            "--node_rank",
            str(cluster.node_rank),
            "--master_addr",
            cluster.master_addr,
            "--master_port",
            str(cluster.master_port),
        ]
    else:
        command.append("--standalone")
    return [*command, "--nproc_per_node", str(processes), "-m", "adaptune.tuning", *tuning_args]


@dataclass(frozen=True)
class TuningOutputs:
    """What the tuning component publishes, whichever way the training ran.

    Attributes:
        summary: Scalars for the Metrics artifact.
        losses: Loss per step.
        eval_losses: Eval loss history.
        report_html: The training report page.
    """

    summary: dict[str, float]
    losses: list[float]
    eval_losses: list[Any]
    report_html: str

    @classmethod
    def from_result(cls, result: Any) -> TuningOutputs:
        """From ``tune_adapter``'s ``TuneResult``."""
        state = result.training.state
        return cls(result.summary, list(state.losses), list(state.eval_losses), result.report_html)

    def write(self, path: Path) -> None:
        """Write as JSON (the first process's result file)."""
        write_json_atomic(
            path,
            {
                "summary": self.summary,
                "losses": self.losses,
                "eval_losses": self.eval_losses,
                "report_html": self.report_html,
            },
        )

    @classmethod
    def read(cls, path: Path) -> TuningOutputs:
        """Read a result file."""
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(data["summary"], data["losses"], data["eval_losses"], data["report_html"])


def tune_in_processes(
    train_file: Path,
    adapter_dir: Path,
    base_model: str,
    settings: TrainingSettings,
    method: AdapterMethod,
    processes: int,
    eval_file: Path | None = None,
    checkpoint_dir: Path | None = None,
    loss_log: Path | None = None,
    cluster: Cluster | None = None,
    work_dir: Path | None = None,
) -> TuningOutputs | None:
    """Tune with ``processes`` processes on this machine (and the others of ``cluster``).

    The processes' output goes to this process's stdout and stderr (the task log).

    Args:
        train_file: Formatted train JSONL.
        adapter_dir: Where the first process saves the adapter.
        base_model: ``builtin:...`` or a checkpoint directory.
        settings: Training settings (each process takes every N-th batch).
        method: The adapter method.
        processes: Processes on this machine.
        eval_file: Formatted eval JSONL.
        checkpoint_dir: Resumable checkpoints.
        loss_log: The run's loss log (written by the first process).
        cluster: The machines (default: from the environment).
        work_dir: Where the result file goes (default: beside ``adapter_dir``).

    Returns:
        The outputs on the first machine; None on the others (they publish nothing).

    Raises:
        UserError: A user error any process reported (its message).
        RuntimeError: When the processes failed otherwise.
    """
    cluster = cluster or cluster_from_env()
    work_dir = work_dir or adapter_dir.parent
    work_dir.mkdir(parents=True, exist_ok=True)
    result = work_dir / f".{adapter_dir.name}-{RESULT_FILE}"
    error = result.with_name(result.name + ERROR_SUFFIX)
    for stale in (result, error):
        stale.unlink(missing_ok=True)  # our own files, from an earlier attempt
    args = [
        "--train",
        str(train_file),
        "--out",
        str(adapter_dir),
        "--base-model",
        base_model,
        "--adapter",
        json.dumps(method.to_dict()),
        "--training",
        json.dumps(settings.to_dict()),
        "--result",
        str(result),
    ]
    if eval_file is not None:
        args += ["--eval", str(eval_file)]
    if checkpoint_dir is not None:
        args += ["--checkpoint-dir", str(checkpoint_dir)]
    if loss_log is not None:
        args += ["--loss-log", str(loss_log)]
    command = torchrun_command(processes, cluster, args)
    print(f"adaptune: tuning in {processes} process(es) x {cluster.nodes} machine(s)", flush=True)
    sys.stdout.flush()
    sys.stderr.flush()
    done = subprocess.run(command, check=False)
    if error.is_file():
        message = json.loads(error.read_text(encoding="utf-8"))["message"]
        error.unlink()
        raise UserError(message)
    if done.returncode != 0:
        raise RuntimeError(
            f"the tuning processes failed (exit status {done.returncode}); see the log above"
        )
    if not cluster.first:
        return None
    outputs = TuningOutputs.read(result)
    result.unlink()
    return outputs
