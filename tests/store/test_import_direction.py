"""The store is innermost (DESIGN §2): its modules import nothing of ours but the store, errors and clock.

Read from the source (every import statement, also those inside functions), so a lazy import
of jobs or webhooks from a store module fails here, not in review.
"""

from __future__ import annotations

import ast
from pathlib import Path

import miniapp_sync.store

STORE = Path(miniapp_sync.store.__file__).parent
# exactjson: the leaf that reads and writes JSON keeping big integers exact; exports: the leaf
# behind the package's names loaded on first use (neither imports anything of ours).
ALLOWED = {
    "miniapp_sync.store",
    "miniapp_sync.errors",
    "miniapp_sync.clock",
    "miniapp_sync.exactjson",
    "miniapp_sync.exports",
}


def ours(tree: ast.AST) -> set[str]:
    """Return the modules of miniapp_sync an AST imports (absolute imports; the package uses no relative ones)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module == "miniapp_sync":  # from miniapp_sync import jobs
            found |= {f"miniapp_sync.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return {name for name in found if name == "miniapp_sync" or name.startswith("miniapp_sync.")}


def test_store_modules_import_only_the_store_errors_and_clock() -> None:
    wrong = {
        f"{path.relative_to(STORE)} imports {name}"
        for path in sorted(STORE.rglob("*.py"))
        for name in ours(ast.parse(path.read_text(encoding="utf-8")))
        if not any(name == allowed or name.startswith(allowed + ".") for allowed in ALLOWED)
    }
    assert not wrong, sorted(wrong)


def test_the_check_sees_a_lazy_import_inside_a_function() -> None:
    source = "def f():\n    from miniapp_sync.jobs import Work\n    import miniapp_sync.webhooks.processor\n"
    source += "from miniapp_sync import sync\n"
    assert ours(ast.parse(source)) == {"miniapp_sync.jobs", "miniapp_sync.webhooks.processor", "miniapp_sync.sync"}
