"""``tune_adapter``: train a LoRA adapter on formatted data and save it in PEFT format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from peft import get_peft_model

from adaptune.atomic import staged_directory, write_bytes_atomic, write_json_atomic
from adaptune.data.jsonl import read_jsonl
from adaptune.errors import UserError
from adaptune.models import load_base_model
from adaptune.tuning.encoding import encode_example
from adaptune.tuning.loop import TrainingHistory, train
from adaptune.tuning.lora import LoraSettings
from adaptune.tuning.loss_curve import plot_loss_png, training_report_html
from adaptune.tuning.settings import TrainingSettings


@dataclass
class TuneResult:
    """What tuning produced.

    Attributes:
        adapter_dir: PEFT adapter (``adapter_config.json``, ``adapter_model.safetensors``).
        history: Loss per step and throughput.
        summary: Scalars for the Metrics artifact.
        report_html: The training report page (loss curve and facts).
    """

    adapter_dir: Path
    history: TrainingHistory
    summary: dict[str, float]
    report_html: str


def tune_adapter(
    train_file: Path,
    adapter_dir: Path,
    base_model: str,
    settings: TrainingSettings,
    lora: LoraSettings,
    show_progress: bool = True,
) -> TuneResult:
    """Train a LoRA adapter with the loss on target tokens only, and save it.

    Args:
        train_file: Formatted JSONL with ``prompt`` and ``target`` per line.
        adapter_dir: Where the PEFT adapter is written (atomically, as a whole directory),
            with ``training_history.json`` and ``loss_curve.png`` beside the weights.
        base_model: ``builtin:...`` or a checkpoint directory.
        settings: Steps, learning rate, batch size, seed.
        lora: LoRA rank, alpha, dropout and target modules.
        show_progress: Show a progress bar.

    Returns:
        Paths, history and summary metrics.

    Raises:
        UserError: If the data is empty or the settings do not fit the model.
    """
    base = load_base_model(base_model)
    pairs = read_jsonl(train_file)
    if not pairs:
        raise UserError(f"{train_file}: no training examples")
    examples = [
        encode_example(base.tokenizer, p["prompt"], p["target"], base.family, settings.max_length)
        for p in pairs
    ]
    torch.manual_seed(settings.seed)  # LoRA A matrices are drawn from the global generator
    try:
        model = get_peft_model(base.model, lora.to_peft(base.family))
    except ValueError as exc:
        raise UserError(f"LoRA settings do not fit {base_model}: {exc}") from exc
    history = train(
        model, examples, settings, base.tokenizer.pad_token_id, base.family, show_progress
    )
    summary = {
        "first_loss": history.losses[0],
        "final_loss": sum(history.losses[-10:]) / len(history.losses[-10:]),
        "steps": float(settings.steps),
        "epochs": round(history.epochs, 3),
        "train_examples": float(len(examples)),
        "train_tokens": float(history.tokens),
        "tokens_per_second": round(history.tokens_per_second, 1),
        "wall_seconds": round(history.wall_seconds, 2),
        "trainable_parameters": float(
            sum(p.numel() for p in model.parameters() if p.requires_grad)
        ),
    }
    png = plot_loss_png(history.losses, f"{base_model} + LoRA r={lora.r}")
    report = training_report_html(
        png, {"base model": base_model, **settings.to_dict(), **lora.to_dict(), **summary}
    )
    with staged_directory(adapter_dir) as staging:
        model.save_pretrained(staging, safe_serialization=True)
        write_json_atomic(
            staging / "training_history.json",
            {
                "losses": history.losses,
                "settings": settings.to_dict(),
                "lora": lora.to_dict(),
                "base_model": base_model,
                "summary": summary,
            },
        )
        write_bytes_atomic(staging / "loss_curve.png", png)
    return TuneResult(adapter_dir=adapter_dir, history=history, summary=summary, report_html=report)
