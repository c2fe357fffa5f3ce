r"""``python -m adaptune.tuning``: tune an adapter outside the pipeline (and under torchrun).

Example, data-parallel on 4 GPUs of one machine::

    torchrun --standalone --nproc_per_node 4 -m adaptune.tuning \\
        --train formatted/train.jsonl --eval formatted/eval.jsonl --out adapter \\
        --base-model /models/my-checkpoint --adapter '{"method": "lora", "r": 16}' \\
        --training '{"steps": 1000, "batch_size": 8}' --checkpoint-dir checkpoints
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from adaptune.atomic import write_json_atomic
from adaptune.errors import UserError


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, tune, print the summary as JSON; 2 on a user error."""
    parser = argparse.ArgumentParser(prog="python -m adaptune.tuning", description=__doc__)
    parser.add_argument("--train", type=Path, required=True, help="formatted train JSONL")
    parser.add_argument("--eval", type=Path, help="formatted eval JSONL")
    parser.add_argument("--out", type=Path, required=True, help="adapter directory to write")
    parser.add_argument("--base-model", default="builtin:tiny-gpt2")
    parser.add_argument("--adapter", default="{}", help="adapter method and settings (JSON)")
    parser.add_argument("--training", default="{}", help="training settings (JSON)")
    parser.add_argument("--checkpoint-dir", type=Path, help="resumable checkpoints")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--loss-log", type=Path, help="append each step's loss here (JSONL)")
    parser.add_argument(
        "--result",
        type=Path,
        help="write the outputs here as JSON (first process), a user error beside it",
    )
    args = parser.parse_args(argv)

    from adaptune.tuning.adapter import tune_adapter
    from adaptune.tuning.distributed import current_workers
    from adaptune.tuning.methods import method_from_dict
    from adaptune.tuning.processes import ERROR_SUFFIX, TuningOutputs
    from adaptune.tuning.settings import TrainingSettings

    try:
        method = method_from_dict(json.loads(args.adapter))
        settings = TrainingSettings.from_dict(json.loads(args.training))
        result = tune_adapter(
            args.train,
            args.out,
            args.base_model,
            settings,
            method,
            eval_file=args.eval,
            checkpoint_dir=args.checkpoint_dir,
            show_progress=not args.quiet,
            loss_log=args.loss_log,
        )
    except (UserError, json.JSONDecodeError) as exc:
        print(f"adaptune: error: {exc}", file=sys.stderr)
        if args.result is not None:
            error = args.result.with_name(args.result.name + ERROR_SUFFIX)
            write_json_atomic(error, {"message": str(exc)})
        return 2
    if current_workers().main:
        if args.result is not None:
            TuningOutputs.from_result(result).write(args.result)
        print(json.dumps(result.summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
