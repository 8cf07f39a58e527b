"""Base models as the operator lists them in the server's configuration: a local Hugging Face directory
or a GGUF file, loaded with its tokenizer, and the template training renders its chats with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.templates import CHATML_TRAINING


@dataclass(frozen=True)
class BaseModel:
    id: str
    path: Path
    context_window: int = 2048
    # A Jinja chat template with {% generation %} markers, for models whose own template is not ChatML.
    training_template: str | None = None

    @property
    def is_gguf(self) -> bool:
        return self.path.suffix == ".gguf"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "path": str(self.path),
            "context_window": self.context_window,
            "training_template": self.training_template,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> BaseModel:
        return cls(
            id=str(raw["id"]),
            path=Path(raw["path"]),
            context_window=int(raw.get("context_window") or 2048),
            training_template=raw.get("training_template"),
        )


def load(base: BaseModel) -> tuple[Any, Any]:
    """(model, tokenizer) in fp32 on the CPU, or on the GPU where there is one; the tokenizer renders chats
    with the training template (assistant turns marked for the loss)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if base.is_gguf:
        # transformers dequantizes a GGUF file into a full-precision model (the `gguf` package reads it).
        tokenizer = AutoTokenizer.from_pretrained(base.path.parent, gguf_file=base.path.name)
        model = AutoModelForCausalLM.from_pretrained(base.path.parent, gguf_file=base.path.name, dtype=torch.float32)
    else:
        tokenizer = AutoTokenizer.from_pretrained(base.path)
        model = AutoModelForCausalLM.from_pretrained(base.path, dtype=torch.float32)
    tokenizer.chat_template = training_template(base, tokenizer.chat_template)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if torch.cuda.is_available():
        model = model.to("cuda")
    return model, tokenizer


def training_template(base: BaseModel, own: str | None) -> str:
    if base.training_template:
        return base.training_template
    if own is None or "<|im_start|>" in own:
        return CHATML_TRAINING
    raise ValueError(
        f"{base.id}: its chat template is not ChatML; give a training_template with {{% generation %}} "
        "markers in the server's configuration"
    )
