"""What a model can read and how far a speech may run: context windows and the character limit.

Pure helpers (JSON files and callables, no torch): the worker's backends use them on a loaded
model, and the web process on a model's files without loading it (docs/limits.md).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Sequence

from huggingface_hub import try_to_load_from_cache

from .bundled import BUNDLED_CONTEXT_WINDOWS, is_bundled

# Config keys that name a model's longest sequence, in the order transformers' architectures use them.
WINDOW_KEYS = ("max_position_embeddings", "n_positions", "max_seq_len", "seq_length", "max_sequence_length")
# Tokenizers without a real limit say so with a huge sentinel (transformers' VERY_LARGE_INTEGER, 1e30).
LARGEST_REAL_WINDOW = 10_000_000


def declared_context_window(config: dict | None, tokenizer_max_length: int | float | None = None) -> int | None:
    """The context window a model declares: its config's position limit and its tokenizer's
    ``model_max_length``, whichever are real (a sentinel above LARGEST_REAL_WINDOW is not), the smaller."""
    found = []
    for source in (config or {}), (config or {}).get("text_config") or {}:
        for key in WINDOW_KEYS:
            value = source.get(key)
            if isinstance(value, int) and 0 < value <= LARGEST_REAL_WINDOW:
                found.append(value)
                break
    if isinstance(tokenizer_max_length, (int, float)) and 0 < tokenizer_max_length <= LARGEST_REAL_WINDOW:
        found.append(int(tokenizer_max_length))
    return min(found) if found else None


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def context_window_from_files(model_name: str, cache_dir: Path | str) -> int | None:
    """A transformers model's window read from its files without loading it (the web process): a
    bundled short name (its converted folder, else the known figure), a local folder, or a hub id
    already in the local Hugging Face cache. None when nothing local says (never a network call)."""
    folder = None
    if is_bundled(model_name):
        folder = Path(cache_dir) / model_name
        if not (folder / "config.json").exists():
            return BUNDLED_CONTEXT_WINDOWS.get(model_name)
    elif Path(model_name).is_dir():
        folder = Path(model_name)
    if folder is not None:
        config, tokenizer = _read_json(folder / "config.json"), _read_json(folder / "tokenizer_config.json")
    else:

        def cached(filename):
            found = try_to_load_from_cache(model_name, filename)
            return _read_json(Path(found)) if isinstance(found, str) else None

        config, tokenizer = cached("config.json"), cached("tokenizer_config.json")
    return declared_context_window(config, (tokenizer or {}).get("model_max_length"))


def tokens_to_reach(tokens: Sequence[int], decode: Callable[[list[int]], str], char_limit: int) -> int | None:
    """How many of ``tokens`` it took for their text (stripped) to reach ``char_limit`` characters;
    None if it never did. Tokens after that many are *past the limit*: generated but never kept."""
    if len(decode(list(tokens)).strip()) < char_limit:
        return None
    low, high = 1, len(tokens)  # the text of tokens[:high] reaches the limit
    while low < high:
        middle = (low + high) // 2
        if len(decode(list(tokens[:middle])).strip()) >= char_limit:
            high = middle
        else:
            low = middle + 1
    return high


def tokens_past_limit(tokens: Sequence[int], decode: Callable[[list[int]], str], char_limit: int | None) -> int | None:
    """Tokens of ``tokens`` generated after their text had reached ``char_limit`` (None: no limit)."""
    if not char_limit:
        return None
    reached = tokens_to_reach(tokens, decode, char_limit)
    return 0 if reached is None else len(tokens) - reached
