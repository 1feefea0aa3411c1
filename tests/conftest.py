"""Shared fixtures: a byte-level tiny tokenizer and tiny random Llama models (CPU, fp32)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def make_tiny_tokenizer() -> Any:
    """Byte-level tokenizer with no merges: 256 byte tokens + 3 specials; any text round-trips."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    vocab = {s: i for i, s in enumerate(specials)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(specials)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    fast.chat_template = TINY_CHAT_TEMPLATE
    return fast


def make_tiny_model(
    vocab_size: int, *, seed: int = 0, eos_bias: float = 0.0, layers: int = 2
) -> Any:
    """A random 2-layer Llama; ``eos_bias`` > 0 adds an LM-head bias making EOS (id 2) likely."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg)
    with torch.no_grad():
        model.lm_head.weight.mul_(20.0)  # sharper than init: not uniform noise
    if eos_bias:
        head = torch.nn.Linear(32, vocab_size, bias=True)
        with torch.no_grad():
            head.weight.copy_(model.lm_head.weight)
            head.bias.zero_()
            head.bias[2] = eos_bias
        model.lm_head = head
    return model.eval()


@pytest.fixture(scope="session")
def tiny_tokenizer() -> Any:
    return make_tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_model(tiny_tokenizer: Any) -> Any:
    return make_tiny_model(len(tiny_tokenizer))


@pytest.fixture(scope="session")
def tiny_model_eos(tiny_tokenizer: Any) -> Any:
    """Stops after ~15 tokens on average, so batches have ragged lengths."""
    return make_tiny_model(len(tiny_tokenizer), seed=1, eos_bias=3.0)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory, tiny_tokenizer: Any) -> Path:
    """A tiny model + tokenizer saved as a local HF checkpoint directory."""
    path = tmp_path_factory.mktemp("tiny_ckpt")
    make_tiny_model(len(tiny_tokenizer)).save_pretrained(path)
    tiny_tokenizer.save_pretrained(path)
    return path


# Tiny models spend their time in thread barriers, and a second busy process on a
# 2-core runner makes multi-threaded small ops many times slower: use one thread.
torch.set_num_threads(1)
