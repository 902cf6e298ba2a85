"""Import layering: the import-linter contracts (pyproject.toml, [tool.importlinter]) hold, and no
module hides an import inside a function, where neither import-linter's reading of the code nor a
reader of the module's header would see it."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
APP_PACKAGES = ["debate_platform", "judging", "generation", "inference", "results", "audit"]

# Third-party packages a function may import when it needs them: each is slow to import (seconds, or
# hundreds of MB of memory) and only some code paths use it, so the web process, management commands
# and the tests that never touch them do not pay for them.
HEAVY_OPTIONAL = {
    "torch",  # model weights and tensors: workers only
    "transformers",  # pulls in torch and tokenizers
    "peft",  # LoRA adapters: distilled adversaries only
    "accelerate",  # device placement when loading large models
    "gguf",  # reading the bundled GGUF weights, once per conversion
    "pyarrow",  # Parquet exports and the BoolQ importer only
    "matplotlib",  # result plots only (and a font cache built on first import)
}
# Project modules that count as heavy: they import torch at module level.
HEAVY_PROJECT_MODULES = {"inference.continuous", "inference.kv_cache", "inference.lanes", "inference.prefix_cache"}


def lint_imports_output() -> subprocess.CompletedProcess:
    """The venv's lint-imports, exactly as dev.py runs it (no cache: nothing written into the tree)."""
    command = [str(Path(sys.executable).parent / "lint-imports"), "--no-cache", "--no-logo"]
    # A wide "terminal", so that each contract's name and verdict stay on one line.
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "COLUMNS": "500"})


def test_the_import_contracts_are_kept():
    result = lint_imports_output()
    broken = [line.strip() for line in result.stdout.splitlines() if line.rstrip().endswith("BROKEN")]
    assert result.returncode == 0, (
        f"broken import contracts: {broken or '(lint-imports could not run)'}\n{result.stdout}\n{result.stderr}"
    )


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """Absolute names of what an import statement may load: for ``from m import n``, both m and m.n
    (n may be a submodule)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if node.level:
        package = module.split(".") if is_package else module.split(".")[:-1]
        base = ".".join(package[: len(package) - (node.level - 1)])
        source = f"{base}.{node.module}" if node.module else base
    else:
        source = node.module or ""
    return [f"{source}.{alias.name}" for alias in node.names]


def is_heavy(name: str) -> bool:
    return name.split(".")[0] in HEAVY_OPTIONAL or any(
        name == heavy or name.startswith(heavy + ".") for heavy in HEAVY_PROJECT_MODULES
    )


def is_ready_importing_receivers(function: ast.AST, parent: ast.AST | None, name: str, module: str) -> bool:
    """Django's idiom: an AppConfig's ready() imports its app's receivers module to connect them."""
    app = module.split(".")[0]
    return (
        isinstance(parent, ast.ClassDef)
        and any(getattr(base, "id", getattr(base, "attr", None)) == "AppConfig" for base in parent.bases)
        and function.name == "ready"
        and (name == f"{app}.receivers" or name.startswith(f"{app}.receivers."))
    )


def local_imports(path: Path) -> list[str]:
    """Every import inside a function body of ``path`` that is not allowed, as 'file:line: ...'."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module, is_package = module_name(path), path.name == "__init__.py"
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    problems = []
    for function in ast.walk(tree):
        if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for node in ast.walk(function):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            # A function nested in another is walked twice; report each import once, for its innermost function.
            owner = parents[node]
            while not isinstance(owner, (ast.FunctionDef, ast.AsyncFunctionDef)):
                owner = parents[owner]
            if owner is not function:
                continue
            for name in imported_modules(node, module, is_package):
                if is_heavy(name) or is_ready_importing_receivers(function, parents.get(function), name, module):
                    continue
                problems.append(f"{path.relative_to(ROOT)}:{node.lineno}: {function.name}() imports {name}")
    return problems


def app_sources() -> list[Path]:
    return [
        path
        for package in APP_PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        if not {"migrations", "tests"} & set(path.relative_to(ROOT).parts)
    ]


def test_no_imports_inside_functions_except_heavy_optional_ones():
    assert len(app_sources()) > 50  # the walk found the apps
    problems = [problem for path in app_sources() for problem in local_imports(path)]
    assert not problems, "imports inside functions (move them to the top of the module):\n" + "\n".join(problems)
