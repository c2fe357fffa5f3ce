"""Layers point one way: every import in the tree is parsed (AST) and checked against the order.

(a) ``components/`` and ``pipelines/`` import only the standard library, ``kfp`` and each other
    at module top level (and GCPC's artifact types, see ``ALLOWED_TOP_LEVEL``); everything else
    is imported inside the function bodies that run in the task's container (or at compile
    time).
(b) Inside ``adaptune/`` a module imports only its own layer or the layers below it, whether the
    import is at the top of the module or inside a function: a lazy import is still a
    dependency.
(c) Nothing below the CLI imports ``components`` or ``pipelines``; the CLI may (it compiles a
    profile for ``vertex submit`` and names the profile's image for ``vertex deploy``).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

LAYERS: list[tuple[str, ...]] = [
    # Foundation: no adaptune imports but each other's.
    (
        "adaptune",
        "adaptune.errors",
        "adaptune.atomic",
        "adaptune.pids",
        "adaptune.hashing",
        "adaptune.run_ids",
        "adaptune.settings_dict",
        "adaptune.step_errors",
        "adaptune.gcs",
        "adaptune.kill_points",
    ),
    ("adaptune.base_models",),  # base LLMs and tokenizers, local or gs://
    ("adaptune.data",),  # reading, validating, formatting and encoding examples
    ("adaptune.compute",),  # device and the target-token loss
    ("adaptune.tuning",),  # adapter methods, the training loop, checkpoints
    ("adaptune.registry",),  # versions and aliases on disk
    ("adaptune.evaluation",),  # generation, metrics, the gate (reads the registry's champion)
    ("adaptune.vertex",),  # Vertex AI jobs, schedules, model registry, endpoints
    ("adaptune.lineage",),  # the metadata store, manifests, the recorder
    ("adaptune.runner",),  # the local run: params, kfp.local, task records, summary
    ("adaptune.serving",),  # the HTTP endpoint
    ("adaptune.studio",),  # the web pages: tuning form, runs, models, Try it, lineage
    ("adaptune.cli", "adaptune.__main__"),  # the command line
]
LAYER_OF = {name: rank for rank, names in enumerate(LAYERS) for name in names}
OUTSIDE = ("components", "pipelines")
ALLOWED_TOP_LEVEL = {
    # A component's output of google-cloud-pipeline-components' type (google.VertexModel,
    # google.VertexEndpoint) must be annotated with GCPC's class at definition time: kfp
    # compiles the annotation into the artifact's schemaTitle and writes this very import into
    # the task's command. The module defines dsl.Artifact subclasses and imports only kfp and
    # the standard library (nothing of GCPC's own runtime), and GCPC is a dependency of the
    # project and its image. Only this module: the rest of GCPC stays out of components/.
    "google_cloud_pipeline_components.types.artifact_types",
}
STDLIB = set(sys.stdlib_module_names) | {"__future__"}


def _module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(tree: ast.Module, top_level_only: bool) -> list[tuple[int, str]]:
    """(line, module) of every absolute import; with ``top_level_only``, outside functions."""
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "adaptune":  # from adaptune import x: x may be a subpackage
                found += [(node.lineno, f"adaptune.{alias.name}") for alias in node.names]
            else:
                found.append((node.lineno, node.module))
    return found


def _layer(module: str) -> int | None:
    """The layer of an adaptune module: its longest listed prefix (``adaptune`` only itself)."""
    parts = module.split(".")
    for end in range(len(parts), 1, -1):
        rank = LAYER_OF.get(".".join(parts[:end]))
        if rank is not None:
            return rank
    return LAYER_OF["adaptune"] if module == "adaptune" else None


def layer_violations(root: Path = REPO) -> list[str]:
    """Every import in the tree that breaks (a), (b) or (c), as ``file:line: message``."""
    problems = []
    for folder in OUTSIDE:
        for path in sorted((root / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for line, module in _imports(tree, top_level_only=True):
                top = module.split(".")[0]
                allowed = top in STDLIB or top == "kfp" or top in OUTSIDE
                if not allowed and module not in ALLOWED_TOP_LEVEL:
                    where = path.relative_to(root)
                    problems.append(f"{where}:{line}: top-level import of {module}")
    for path in sorted((root / "adaptune").rglob("*.py")):
        name = _module_name(path, root)
        own = _layer(name)
        if own is None:
            problems.append(f"{path.relative_to(root)}: module {name} is in no layer")
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for line, module in _imports(tree, top_level_only=False):
            top = module.split(".")[0]
            where = f"{path.relative_to(root)}:{line}"
            if top in OUTSIDE and own != LAYER_OF["adaptune.cli"]:
                problems.append(f"{where}: {name} imports {module} (only the CLI may)")
            elif top == "adaptune":
                theirs = _layer(module)
                if theirs is not None and theirs > own:
                    problems.append(
                        f"{where}: {name} (layer {own}) imports {module} (layer {theirs})"
                    )
    return problems


def test_layers_point_one_way():
    assert layer_violations() == []


def test_every_adaptune_package_is_in_a_layer():
    packages = {_module_name(p.parent) for p in (REPO / "adaptune").rglob("__init__.py")} | {
        _module_name(p) for p in (REPO / "adaptune").glob("*.py")
    }
    assert sorted(p for p in packages if _layer(p) is None) == []


@pytest.mark.parametrize(
    ("file", "source", "expected"),
    [
        ("adaptune/data/leak.py", "from adaptune.runner import dag\n", "imports adaptune.runner"),
        ("adaptune/data/lazy.py", "def f():\n    import adaptune.tuning.loop\n", "layer 4"),
        ("adaptune/registry/up.py", "from adaptune.vertex import jobs\n", "adaptune.vertex"),
        ("adaptune/vertex/img.py", "from components.images import IMAGE\n", "only the CLI may"),
        ("components/bad.py", "import torch\n", "top-level import of torch"),
        (
            "components/gcpc.py",
            "from google_cloud_pipeline_components.v1.endpoint import ModelDeployOp\n",
            "top-level import of google_cloud_pipeline_components.v1.endpoint",
        ),
        ("pipelines/bad.py", "from adaptune.runner import dag\n", "top-level import of adaptune"),
    ],
)
def test_a_forbidden_import_is_caught(tmp_path, file, source, expected):
    for folder in ("adaptune", *OUTSIDE):
        (tmp_path / folder).mkdir()
    for package in ("adaptune/data", "adaptune/registry", "adaptune/vertex"):
        (tmp_path / package).mkdir(exist_ok=True)
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "adaptune" / "__init__.py").write_text("")
    (tmp_path / file).write_text(source)
    (problem,) = layer_violations(tmp_path)
    assert expected in problem and file in problem


def test_the_readme_layout_names_every_package_and_nothing_else():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Layout\n", 1)[1].split("\n## ", 1)[0]
    named = {
        row.split("`")[1].rstrip("/")
        for row in section.splitlines()
        if row.startswith("| `") and row.split("`")[1].endswith("/")
    }
    packages = {f"adaptune/{p.parent.name}" for p in (REPO / "adaptune").glob("*/__init__.py")}
    folders = {
        p.name
        for p in REPO.iterdir()
        if p.is_dir()
        and not p.name.startswith(".")
        and any(p.rglob("*.*"))
        and p.name not in ("build", "dist", "runs", "registry")
        and not p.name.endswith(".egg-info")
    }
    assert named == packages | folders - {"adaptune"}
    assert "| `adaptune/*.py` |" in section, "the foundation modules have their row"
