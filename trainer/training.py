"""One fine-tuning job in its own process (``python -m trainer train JOB_DIR``): LoRA SFT or DPO with TRL
and PEFT on OpenAI's JSONL as it is, reporting as OpenAI's API does.

The job directory is the whole contract with the server: ``job.json`` says what to train; the process
appends ``events.jsonl`` (OpenAI's ``message`` and ``metrics`` events) and ``checkpoints.jsonl`` (one per
epoch), leaves the adapter in ``adapter/`` and its outcome in ``result.json``. The server asks it to stop by
writing ``cancel`` or ``pause`` into ``control``; it reads that at the end of each step. A paused or
crashed job starts again from its latest checkpoint in ``hf/``.
"""

from __future__ import annotations

import json
import math
import time
import traceback
from pathlib import Path
from typing import Any

from trainer.bases import BaseModel, load

DEFAULT_EPOCHS = 3
DEFAULT_LEARNING_RATE = 2e-4
DEFAULT_LORA_RANK = 16


class JobLog:
    """Appends the job's events and checkpoints, one JSON object per line, flushed as written."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def event(self, message: str, *, kind: str = "message", level: str = "info", data: Any = None) -> None:
        self._append(
            "events.jsonl",
            {"created_at": int(time.time()), "level": level, "message": message, "type": kind, "data": data},
        )

    def checkpoint(self, step: int, path: Path, metrics: dict[str, Any]) -> None:
        self._append(
            "checkpoints.jsonl",
            {"created_at": int(time.time()), "step_number": step, "path": str(path), "metrics": metrics},
        )

    def result(self, status: str, **fields: Any) -> None:
        (self.directory / "result.json").write_text(json.dumps({"status": status, **fields}))

    def _append(self, name: str, record: dict[str, Any]) -> None:
        with (self.directory / name).open("a", encoding="utf-8") as log:
            log.write(json.dumps(record) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sft_rows(tokenizer: Any, rows: list[dict[str, Any]], max_length: int) -> list[dict[str, list[int]]]:
    """OpenAI chat rows as token ids with labels: -100 wherever the loss must not learn (everything but
    assistant turns whose ``weight`` is not 0), cut to ``max_length``."""
    tokenized = []
    for row in rows:
        rendered = tokenizer.apply_chat_template(
            row["messages"],
            tools=row.get("tools") or None,
            tokenize=True,
            return_dict=True,
            return_assistant_tokens_mask=True,
        )
        ids = list(rendered["input_ids"])[:max_length]
        mask = list(rendered["assistant_masks"])[:max_length]
        if not any(mask):
            continue
        tokenized.append({"input_ids": ids, "labels": [i if m else -100 for i, m in zip(ids, mask, strict=True)]})
    return tokenized


def dpo_rows(tokenizer: Any, rows: list[dict[str, Any]]) -> list[dict[str, str]]:
    """OpenAI preference rows (input, preferred_output, non_preferred_output) as TRL's prompt/chosen/rejected."""
    end = "<|im_end|>" if "<|im_start|>" in (tokenizer.chat_template or "") else (tokenizer.eos_token or "")
    converted = []
    for row in rows:
        prompt = tokenizer.apply_chat_template(
            row["input"]["messages"],
            tools=row["input"].get("tools") or None,
            tokenize=False,
            add_generation_prompt=True,
        )
        converted.append(
            {
                "prompt": prompt,
                "chosen": str(row["preferred_output"][-1].get("content") or "") + end,
                "rejected": str(row["non_preferred_output"][-1].get("content") or "") + end,
            }
        )
    return converted


def run(directory: Path) -> int:
    log = JobLog(directory)
    spec = json.loads((directory / "job.json").read_text())
    try:
        return _train(directory, spec, log)
    except Exception as failure:  # whatever stops training is the job's failure, told in its own words
        (directory / "traceback.txt").write_text(traceback.format_exc())
        message = f"{type(failure).__name__}: {failure}"[:500]
        log.event(f"Fine-tuning failed: {message}", level="error")
        log.result("failed", error={"code": "training_failed", "message": message, "param": None})
        return 1


def _train(directory: Path, spec: dict[str, Any], log: JobLog) -> int:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import set_seed

    hyper = spec.get("hyperparameters") or {}
    seed = int(spec.get("seed") or 0)
    set_seed(seed)
    base = BaseModel.from_json(spec["base"])
    model, tokenizer = load(base)
    max_length = min(int(spec.get("max_length") or 512), base.context_window)
    method = spec.get("method", "supervised")
    train_rows = read_jsonl(Path(spec["training_file"]))
    valid_rows = read_jsonl(Path(spec["validation_file"])) if spec.get("validation_file") else []
    epochs = int(hyper.get("n_epochs") or DEFAULT_EPOCHS)
    batch_size = int(hyper.get("batch_size") or 1)
    learning_rate = float(hyper.get("learning_rate") or DEFAULT_LEARNING_RATE)
    rank = int(hyper.get("lora_rank") or DEFAULT_LORA_RANK)
    lora = LoraConfig(
        r=rank,
        lora_alpha=int(hyper.get("lora_alpha") or 2 * rank),
        lora_dropout=0.0,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    checkpoints = directory / "hf"
    resume = _latest_checkpoint(checkpoints)
    if resume is None:
        log.event(f"Fine-tuning job started: {method} with LoRA rank {rank} on {base.id}")
    else:
        log.event(f"Fine-tuning job resumed from step {resume.name.split('-')[-1]}")
    common: dict[str, Any] = {
        "output_dir": str(checkpoints),
        "num_train_epochs": epochs,
        "per_device_train_batch_size": batch_size,
        "per_device_eval_batch_size": batch_size,
        "learning_rate": learning_rate,
        "lr_scheduler_type": "linear",
        "logging_steps": 1,
        "save_strategy": "epoch",
        "save_total_limit": 3,
        "eval_strategy": "epoch" if valid_rows else "no",
        "seed": seed,
        "data_seed": seed,
        "report_to": [],
        "disable_tqdm": True,
        "use_cpu": not torch.cuda.is_available(),
        "dataloader_num_workers": 0,
    }
    if method == "dpo":
        from trl import DPOConfig as TrainingConfig
        from trl import DPOTrainer as Trainer

        train_set = Dataset.from_list(dpo_rows(tokenizer, train_rows))
        valid_set = Dataset.from_list(dpo_rows(tokenizer, valid_rows)) if valid_rows else None
        config: Any = TrainingConfig(**common, beta=float(hyper.get("beta") or 0.1), max_length=max_length)
    else:
        from trl import SFTConfig as TrainingConfig
        from trl import SFTTrainer as Trainer

        train_set = Dataset.from_list(sft_rows(tokenizer, train_rows, max_length))
        valid_set = Dataset.from_list(sft_rows(tokenizer, valid_rows, max_length)) if valid_rows else None
        if len(train_set) == 0:
            raise ValueError("no example has an assistant turn to learn from (all weights 0?)")
        config = TrainingConfig(**common, max_length=max_length, packing=False)
    trainer: Any = Trainer(
        model=model,
        args=config,
        train_dataset=train_set,
        eval_dataset=valid_set,
        processing_class=tokenizer,
        peft_config=lora,
    )
    events = OpenAIEvents(directory, log, trainer, valid_set, batch_size)
    trainer.add_callback(events)
    trained_tokens = epochs * sum(len(row.get("input_ids") or []) for row in train_set) if method != "dpo" else 0
    trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    events.flush()
    if events.stopped == "cancel":
        log.event("Fine-tuning job cancelled")
        log.result("cancelled")
        return 0
    if events.stopped == "pause":
        log.event("Fine-tuning job paused")
        log.result("paused")
        return 0
    trainer.model.save_pretrained(directory / "adapter")
    log.event("The job has successfully completed")
    log.result("succeeded", trained_tokens=trained_tokens)
    return 0


def _latest_checkpoint(directory: Path) -> Path | None:
    found = [path for path in directory.glob("checkpoint-*") if (path / "trainer_state.json").exists()]
    return max(found, key=lambda path: int(path.name.split("-")[-1]), default=None)


def _callback_base() -> Any:
    from transformers import TrainerCallback

    return TrainerCallback


class OpenAIEvents(_callback_base()):  # type: ignore[misc]
    """Turns the trainer's logs into OpenAI's events: a ``metrics`` event per step (train_loss, valid_loss on
    one validation batch, and full_valid_loss at the end of each epoch), a checkpoint per epoch; and stops
    at the end of a step when the server writes ``cancel`` or ``pause``."""

    def __init__(self, directory: Path, log: JobLog, trainer: Any, valid_set: Any, batch_size: int) -> None:
        self.directory = directory
        self.log = log
        self.trainer = trainer
        self.valid_set = valid_set
        self.batch_size = batch_size
        self.pending: dict[str, Any] | None = None
        self.valid_loss: float | None = None
        self.stopped: str | None = None

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.flush()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.valid_set is not None and "input_ids" in self.valid_set.column_names:
            self.valid_loss = self._one_valid_batch(state.global_step)
        control_file = self.directory / "control"
        wanted = control_file.read_text().strip() if control_file.exists() else ""
        if wanted in ("cancel", "pause"):
            self.stopped = wanted
            control.should_training_stop = True
            control.should_save = wanted == "pause"

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kwargs: Any) -> None:
        logs = logs or {}
        if "loss" not in logs:
            return
        self.flush()
        data: dict[str, Any] = {
            "step": state.global_step,
            "train_loss": float(logs["loss"]),
            "total_steps": state.max_steps,
        }
        if "mean_token_accuracy" in logs:
            data["train_mean_token_accuracy"] = float(logs["mean_token_accuracy"])
        if "rewards/accuracies" in logs:
            data["train_reward_accuracy"] = float(logs["rewards/accuracies"])
        if self.valid_loss is not None:
            data["valid_loss"] = self.valid_loss
        self.pending = data

    def on_evaluate(
        self, args: Any, state: Any, control: Any, metrics: dict[str, float] | None = None, **kwargs: Any
    ) -> None:
        if self.pending is not None and metrics and "eval_loss" in metrics:
            self.pending["full_valid_loss"] = float(metrics["eval_loss"])
            if "eval_mean_token_accuracy" in metrics:
                self.pending["full_valid_mean_token_accuracy"] = float(metrics["eval_mean_token_accuracy"])

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        metrics = dict(self.pending or {})
        self.flush()
        epoch_end = state.epoch is not None and abs(state.epoch - round(state.epoch)) < 1e-6
        if epoch_end and self.stopped != "pause":
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            self.log.checkpoint(
                state.global_step, path, {key: value for key, value in metrics.items() if key != "total_steps"}
            )

    def flush(self) -> None:
        if self.pending is None:
            return
        data, self.pending = self.pending, None
        parts = [f"training loss={data['train_loss']:.4f}"]
        if "valid_loss" in data:
            parts.append(f"validation loss={data['valid_loss']:.4f}")
        if "full_valid_loss" in data:
            parts.append(f"full validation loss={data['full_valid_loss']:.4f}")
        self.log.event(f"Step {data['step']}/{data['total_steps']}: {', '.join(parts)}", kind="metrics", data=data)

    def _one_valid_batch(self, step: int) -> float | None:
        import torch

        count = len(self.valid_set)
        if count == 0:
            return None
        start = (step * self.batch_size) % count
        rows = [self.valid_set[(start + offset) % count] for offset in range(min(self.batch_size, count))]
        model = self.trainer.model
        losses = []
        with torch.no_grad():
            for row in rows:
                ids = torch.tensor([row["input_ids"]], device=model.device)
                labels = torch.tensor([row["labels"]], device=model.device)
                losses.append(float(model(input_ids=ids, labels=labels).loss))
        value = sum(losses) / len(losses)
        return value if math.isfinite(value) else None
