"""A tiny chat model built from nothing, for tests and the offline demo of the server: a byte-level BPE
trained with ``tokenizers`` on the given texts, a 4-layer Llama with hidden size 128 and a ChatML template.

Its embeddings start with std 0.1, not the default 0.02: with the embedding frozen and tied, LoRA cannot
move the logits enough to learn from the smaller init (loss stays at ln(vocab)).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

from trainer.templates import CHATML_TRAINING

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
EMBEDDING_STD = 0.1


def texts_of(jsonl: Path) -> list[str]:
    """Every string in a chat or preference JSONL file, for the tokenizer to learn its pieces from."""
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for line in jsonl.read_text(encoding="utf-8").splitlines():
        if line.strip():
            walk(json.loads(line))
    return found


def build(directory: Path, texts: Iterable[str], *, vocab_size: int = 700, seed: int = 0) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(seed)
    directory.mkdir(parents=True, exist_ok=True)
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    corpus = [*texts, "system user assistant tool\n", "Hello! How can I help you today?"]
    bpe.train_from_iterator(
        corpus,
        trainers.BpeTrainer(
            vocab_size=vocab_size,
            special_tokens=SPECIAL_TOKENS,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        ),
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
    )
    tokenizer.chat_template = CHATML_TRAINING
    tokenizer.save_pretrained(directory)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=None,
    )
    model = LlamaForCausalLM(config)
    torch.nn.init.normal_(model.get_input_embeddings().weight, std=EMBEDDING_STD)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(directory)
    return directory
