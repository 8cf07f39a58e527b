"""Chat with base models and their LoRA adapters on the CPU (or one GPU) through transformers: each base
is loaded once, each fine-tune is a named adapter on it, and a base answers with its adapters off."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainer.bases import BaseModel, load


@dataclass
class Answer:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str


class Serving:
    """One loaded model per base; generation runs one at a time per base, off the event loop."""

    def __init__(self) -> None:
        # Imported here, on the main thread, before any warm-up thread: transformers' lazy imports are not
        # safe to race (a streamed chat during warm-up failed with "cannot import name TextIteratorStreamer").
        import peft
        from transformers import AutoModelForCausalLM, AutoTokenizer, TextIteratorStreamer

        self._streamer_class = TextIteratorStreamer
        del peft, AutoModelForCausalLM, AutoTokenizer
        self._loaded: dict[str, tuple[Any, Any, set[str]]] = {}
        self._lock = threading.Lock()

    def _model(self, base: BaseModel, adapter: tuple[str, Path] | None) -> tuple[Any, Any]:
        from peft import PeftModel

        if base.id not in self._loaded:
            model, tokenizer = load(base)
            self._loaded[base.id] = (model, tokenizer, set())
        model, tokenizer, adapters = self._loaded[base.id]
        if adapter is not None:
            name, path = adapter
            if not isinstance(model, PeftModel):
                model = PeftModel.from_pretrained(model, str(path), adapter_name=name)
                self._loaded[base.id] = (model, tokenizer, adapters)
            elif name not in adapters:
                model.load_adapter(str(path), adapter_name=name)
            adapters.add(name)
            model.set_adapter(name)
        model.eval()
        return model, tokenizer

    def warm(self, base: BaseModel) -> None:
        """Load a base before the first chat needs it (a GGUF file takes seconds to dequantize)."""
        with self._lock:
            self._model(base, None)

    def forget(self, base_id: str, name: str) -> None:
        """Unload a deleted fine-tune's adapter."""
        with self._lock:
            loaded = self._loaded.get(base_id)
            if loaded is not None and name in loaded[2]:
                loaded[0].delete_adapter(name)
                loaded[2].discard(name)

    def _prepare(
        self, base: BaseModel, adapter: tuple[str, Path] | None, request: dict[str, Any]
    ) -> tuple[Any, Any, Any, dict[str, Any]]:
        model, tokenizer = self._model(base, adapter)
        rendered = tokenizer.apply_chat_template(
            request["messages"],
            tools=request.get("tools") or None,
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        inputs = {key: value.to(model.device) for key, value in rendered.items()}
        budget = max(1, base.context_window - int(inputs["input_ids"].shape[1]))
        limit = request.get("max_completion_tokens") or request.get("max_tokens") or 256
        temperature = request.get("temperature")
        options: dict[str, Any] = {
            "max_new_tokens": min(int(limit), budget),
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.convert_tokens_to_ids("<|im_end|>")
            if "<|im_end|>" in tokenizer.get_vocab()
            else tokenizer.eos_token_id,
        }
        # Greedy unless a temperature above 0 is asked for: a team's own model should answer the same twice.
        if temperature:
            options.update(do_sample=True, temperature=float(temperature), top_p=float(request.get("top_p") or 1.0))
        else:
            options.update(do_sample=False)
        return model, tokenizer, inputs, options

    def _generate(
        self, base: BaseModel, adapter: tuple[str, Path] | None, request: dict[str, Any], streamer: Any = None
    ) -> Answer:
        import torch

        with self._lock:
            model, tokenizer, inputs, options = self._prepare(base, adapter, request)
            if adapter is None and hasattr(model, "disable_adapter"):
                context: Any = model.disable_adapter()
            else:
                context = _Nothing()
            with torch.no_grad(), context:
                output = model.generate(**inputs, **options, streamer=streamer)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        new = output[0][prompt_tokens:]
        finished = len(new) > 0 and int(new[-1]) == options["eos_token_id"]
        text = tokenizer.decode(new, skip_special_tokens=True)
        return Answer(text, prompt_tokens, len(new), "stop" if finished else "length")

    async def complete(self, base: BaseModel, adapter: tuple[str, Path] | None, request: dict[str, Any]) -> Answer:
        return await asyncio.to_thread(self._generate, base, adapter, request)

    async def stream(
        self, base: BaseModel, adapter: tuple[str, Path] | None, request: dict[str, Any]
    ) -> AsyncIterator[str | Answer]:
        """The answer's text piece by piece as it is generated, then the whole Answer."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | Answer | BaseException] = asyncio.Queue()

        class Pieces(self._streamer_class):  # type: ignore[misc,name-defined]
            def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
                if text:
                    loop.call_soon_threadsafe(queue.put_nowait, text)

        def work() -> None:
            try:
                with self._lock:
                    tokenizer = self._model(base, adapter)[1]
                answer = self._generate(
                    base, adapter, request, Pieces(tokenizer, skip_prompt=True, skip_special_tokens=True)
                )
                loop.call_soon_threadsafe(queue.put_nowait, answer)
            except BaseException as failure:  # handed to the request, which answers with an error
                loop.call_soon_threadsafe(queue.put_nowait, failure)

        threading.Thread(target=work, daemon=True).start()
        while True:
            item = await queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item
            if isinstance(item, Answer):
                return


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
