"""How the code is laid out, checked: the dashboard and the HTTP API use only the public API,
the public API does not load the engine, and no class or function grows past a reader."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# What dashboard/ and api/ may import from the engine's package: the package itself (its
# __init__ is the public API) and the public modules it documents.
PUBLIC_MODULES = {"workflows", "workflows.approvals", "workflows.bulk_jobs", "workflows.tracing"}


def python_files(*folders):
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def imported_modules(path):
    """Every module a file imports, as absolute dotted names (``from x import y`` gives x and x.y)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def engine_imports(path):
    """The imports of ``path`` that reach a ``workflows`` submodule other than the public ones."""
    bad = []
    for line, module in imported_modules(path):
        if not module.startswith("workflows."):
            continue
        first = module.split(".")[1]
        if f"workflows.{first}" not in PUBLIC_MODULES and _is_submodule(first):
            bad.append((line, module))
    return bad


def _is_submodule(name):
    return (ROOT / "workflows" / f"{name}.py").exists() or (ROOT / "workflows" / name).is_dir()


@pytest.mark.parametrize("path", list(python_files("dashboard", "api")), ids=lambda p: str(p.relative_to(ROOT)))
def test_the_dashboard_and_the_http_api_import_only_the_public_api(path):
    assert engine_imports(path) == [], f"{path.relative_to(ROOT)} reaches past the public API"


def test_the_import_rule_catches_a_reach_past_the_public_api(tmp_path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text(
        "from workflows.models import Instance\nfrom workflows import clock\nfrom workflows import Status\n"
    )
    assert engine_imports(sneaky) == [(1, "workflows.models"), (1, "workflows.models.Instance"), (2, "workflows.clock")]


@pytest.mark.parametrize("module", ["workflows/api.py", "workflows/queries.py", "workflows/__init__.py"])
def test_the_public_api_modules_do_not_import_the_engine(module):
    imports = [name for _, name in imported_modules(ROOT / module)]
    assert not [
        name for name in imports if name.startswith(("workflows.engine", "workflows.bindings", "workflows.tasks"))
    ]


def test_a_web_process_never_loads_the_replay_engine_the_bindings_or_the_bridge():
    script = (
        "import os, sys; os.environ['DJANGO_SETTINGS_MODULE'] = 'config.settings_test'\n"
        "import django; django.setup()\n"
        "import config.urls, dashboard.views, api.views, workflows.api, workflows.queries\n"
        "heavy = ('workflows.engine', 'workflows.bindings', 'workflows.tasks')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_class_is_over_250_lines_and_no_function_over_50():
    too_long = []
    for path in python_files("workflows", "dashboard", "api", "config", "examples"):
        for node in ast.walk(ast.parse(path.read_text())):
            lines = getattr(node, "end_lineno", 0) - getattr(node, "lineno", 0) + 1
            if (
                isinstance(node, ast.ClassDef)
                and lines > 250
                or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and lines > 50
            ):
                too_long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({lines} lines)")
    assert too_long == []


def test_templates_and_static_files_live_at_the_top_level():
    assert (ROOT / "templates" / "base.html").exists() and (ROOT / "templates" / "registration" / "login.html").exists()
    assert list((ROOT / "templates" / "dashboard").glob("_*.html")), "fragments sit beside the pages"
    assert (ROOT / "static" / "dashboard" / "dashboard.css").exists()
    assert not (ROOT / "dashboard" / "templates").exists() and not (ROOT / "dashboard" / "static").exists()
