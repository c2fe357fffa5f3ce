"""Hostile registry inputs through the commands a user types and over HTTP.

Each case: the exit code (or HTTP status), one line without a traceback, and nothing outside
what the command should change has changed (a tree listing with file hashes, before and after).
"""

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hostile import invoke, one_line_error, tree

from adaptune.registry import read_aliases, register_version
from adaptune.serving.app import create_app
from adaptune.serving.settings import ServeSettings

pytestmark = pytest.mark.hostile


@pytest.fixture
def registry(tmp_path, adapter) -> Path:
    """router v1, v2 (production v2, previous v1); other v1 (production)."""
    reg = tmp_path / "reg"
    for run in ("run-a", "run-b"):
        register_version(reg, "router", adapter, {"run_id": run}, promote=True)
    register_version(reg, "other", adapter, {"run_id": "run-c"}, promote=True)
    return reg


def writable(path: Path) -> Path:
    path.chmod(0o644)
    return path


# -- promote and rollback verify the target's files ---------------------------------------------


def garbage(version: Path) -> str:
    writable(version / "adapter_model.safetensors").write_bytes(b"garbage")
    return "adapter_model.safetensors changed since registration"


def deleted(version: Path) -> str:
    (version / "adapter_model.safetensors").unlink()
    return "adapter_model.safetensors is missing"


def no_config(version: Path) -> str:
    (version / "adapter_config.json").unlink()
    return "adapter_config.json is missing"


def bad_files_record(version: Path) -> str:
    meta = json.loads((version / "version.json").read_text())
    writable(version / "version.json").write_text(json.dumps({**meta, "files": ["x"]}))
    return "'files' in version.json is not a name→sha256 map"


def corrupt_metadata(version: Path) -> str:
    writable(version / "version.json").write_text("{not json")
    return "version.json is unreadable"


@pytest.mark.parametrize(
    "damage", [garbage, deleted, no_config, bad_files_record, corrupt_metadata]
)
@pytest.mark.parametrize("command", ["promote", "models-promote", "rollback"])
def test_an_alias_never_moves_to_a_damaged_version(registry, damage, command):
    v1 = registry / "router" / "v1"
    reason = damage(v1)
    before = tree(registry)
    args = {
        "promote": ("promote", "router@v1"),
        "models-promote": ("models", "promote", "router@v1"),
        "rollback": ("rollback", "router"),
    }[command]
    line = one_line_error(invoke(*args, "--registry-dir", registry))
    assert reason in line and "router@v1" in line, line
    assert str(v1) in line or "version.json" in line
    assert tree(registry) == before
    assert read_aliases(registry, "router") == {"production": 2, "previous": 1}


def test_a_version_from_before_checksums_is_promoted_with_a_note(registry):
    v1 = registry / "router" / "v1"
    meta = json.loads((v1 / "version.json").read_text())
    del meta["files"]
    writable(v1 / "version.json").write_text(json.dumps(meta))
    result = invoke("rollback", "router", "--registry-dir", registry)
    assert result.exit_code == 0, result.output
    assert "could not be verified" in result.output and str(v1) in result.output
    assert "production → v1, previous → v2" in result.output
    # ...but one whose adapter files are gone is refused all the same
    (v1 / "adapter_model.safetensors").unlink()
    before = tree(registry)
    line = one_line_error(invoke("promote", "router@v1", "--registry-dir", registry))
    assert "missing adapter_model.safetensors" in line
    assert tree(registry) == before


def test_a_version_from_before_checksums_with_a_garbage_config_is_refused(registry):
    v1 = registry / "router" / "v1"
    meta = json.loads((v1 / "version.json").read_text())
    del meta["files"]
    writable(v1 / "version.json").write_text(json.dumps(meta))
    writable(v1 / "adapter_config.json").write_bytes(b"\xff\xfe")
    before = tree(registry)
    line = one_line_error(invoke("rollback", "router", "--registry-dir", registry))
    assert "adapter_config.json is unreadable" in line
    assert tree(registry) == before


# -- a corrupt version or index is reported; every other model keeps working --------------------


def corrupt_version(reg: Path) -> tuple[Path, str]:
    path = writable(reg / "router" / "v1" / "version.json")
    path.write_text("{not json")
    return path, "router@v1 is broken"


def list_version(reg: Path) -> tuple[Path, str]:
    path = writable(reg / "router" / "v1" / "version.json")
    path.write_text("[1, 2]")
    return path, "is not a JSON object"


def missing_version(reg: Path) -> tuple[Path, str]:
    path = reg / "router" / "v1" / "version.json"
    path.unlink()
    return path, "is missing"


def corrupt_index(reg: Path) -> tuple[Path, str]:
    path = reg / "router" / "index.json"
    path.write_text('{"versions": "x"')
    return path, "is not a registry index"


def index_without_versions(reg: Path) -> tuple[Path, str]:
    path = reg / "router" / "index.json"
    path.write_text('{"aliases": {}}')
    return path, "is not a registry index"


def binary_index(reg: Path) -> tuple[Path, str]:
    path = reg / "router" / "index.json"
    path.write_bytes(b"\xff\x00\xfe")
    return path, "is not a registry index"


CORRUPTIONS = [
    corrupt_version,
    list_version,
    missing_version,
    corrupt_index,
    index_without_versions,
    binary_index,
]


@pytest.mark.parametrize("corrupt", CORRUPTIONS)
def test_models_list_reports_the_broken_model_and_lists_the_others(registry, corrupt):
    path, reason = corrupt(registry)
    before = tree(registry)
    result = invoke("models", "list", "--registry-dir", registry, "--json")
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    rows = {row["model"]: row for row in json.loads(result.stdout)}
    assert rows["other"] == {"model": "other", "versions": [1], "aliases": {"production": 1}}
    (problem,) = rows["router"]["problems"]
    assert str(path) in problem and reason in problem
    assert problem in result.stderr
    if path.name == "version.json":  # the rest of the model is listed
        assert rows["router"]["versions"] == [2]
        assert rows["router"]["aliases"] == {"production": 2, "previous": 1}
    table = invoke("models", "list", "--registry-dir", registry)
    assert table.exit_code == 0 and "other" in table.output and "Traceback" not in table.output
    assert tree(registry) == before


@pytest.mark.parametrize("corrupt", CORRUPTIONS)
def test_models_show_of_a_broken_model_is_one_line_or_a_listing_with_the_problem(registry, corrupt):
    path, reason = corrupt(registry)
    before = tree(registry)
    shown = invoke("models", "show", "router", "--registry-dir", registry)
    if path.name == "index.json":
        line = one_line_error(shown)
        assert str(path) in line and reason in line
    else:
        assert shown.exit_code == 0, shown.output
        assert "v2" in shown.stdout and str(path) in shown.stderr
        line = one_line_error(invoke("models", "show", "router@v1", "--registry-dir", registry))
        assert str(path) in line and reason in line
    other = invoke("models", "show", "other@production", "--registry-dir", registry)
    assert other.exit_code == 0 and json.loads(other.output)["run_id"] == "run-c"
    assert tree(registry) == before


@pytest.mark.parametrize("corrupt", CORRUPTIONS)
def test_the_server_lists_and_starts_beside_a_broken_model(registry, corrupt):
    path, reason = corrupt(registry)
    before = tree(registry)
    app = create_app(ServeSettings(registry_dir=registry), preload_models=True)
    with TestClient(app) as client:  # the lifespan preloads: a broken model does not stop it
        listed = client.get("/v1/models")
        assert listed.status_code == 200, listed.text
        models = {m["model"]: m for m in listed.json()["models"]}
        assert models["other"]["versions"] == [1]
        if path.name == "index.json":
            assert str(path) in models["router"]["error"] and reason in models["router"]["error"]
        else:
            assert models["router"]["versions"] == [1, 2]
        assert client.get("/health").status_code == 200
    assert tree(registry) == before


def test_a_writer_refuses_a_corrupt_index_with_its_path_and_changes_nothing(registry, adapter):
    path, _ = corrupt_index(registry)
    before = tree(registry)
    line = one_line_error(invoke("promote", "router@v1", "--registry-dir", registry))
    assert str(path) in line and "move it aside" in line
    assert tree(registry) == before
    # the other model is untouched by it
    assert invoke("promote", "other@v1", "--registry-dir", registry).exit_code == 0


# -- export-merged never replaces what it should not ---------------------------------------------

BASE = "builtin:tiny-gpt2"


@pytest.fixture(scope="module")
def lora(tmp_path_factory) -> Path:
    from sample_adapters import save_random_lora

    return save_random_lora(BASE, tmp_path_factory.mktemp("lora") / "adapter", seed=1)


@pytest.fixture
def workspace(tmp_path, lora, monkeypatch) -> Path:
    """A project directory: a registry holding the adapter, a non-empty directory, a file."""
    root = tmp_path / "project"
    (root / "notes").mkdir(parents=True)
    (root / "notes" / "keep.txt").write_text("precious")
    (root / "a-file").write_text("x")
    (root / "empty").mkdir()
    register_version(root / "registry", "router", lora, {"base_model": BASE}, promote=True)
    monkeypatch.chdir(root)
    return root


@pytest.mark.parametrize(
    ("out", "force", "reason"),
    [
        ("notes", False, "is not empty"),
        (".", False, "current directory"),
        (".", True, "current directory"),
        ("..", True, "current directory"),
        ("a-file", True, "is a file"),
        ("registry", False, "registry path"),
        ("registry", True, "registry path"),
        ("registry/router", True, "registry path"),
        ("registry/router/v1", True, "registry path"),
        ("registry/router/v1/inner", True, "registry path"),
        ("registry/router/v9", True, "registry path"),
        ("registry/router/v1/adapter_model.safetensors", True, "registry path"),
        ("adapter-copy", True, "adapter's directory"),
    ],
)
def test_export_merged_refuses_a_target_it_would_lose_data_in(workspace, lora, out, force, reason):
    import shutil

    shutil.copytree(lora, workspace / "adapter-copy")
    adapter = workspace / "adapter-copy" if out == "adapter-copy" else lora
    before = tree(workspace)
    flags = ["--force"] if force else []
    result = invoke("export-merged", adapter, out, "--base-model", BASE, *flags)
    line = one_line_error(result)
    assert reason in line, line
    assert tree(workspace) == before


def test_a_symlink_out_dir_is_refused(workspace, lora):
    (workspace / "link").symlink_to(workspace / "registry" / "router" / "v1")
    before = tree(workspace)
    line = one_line_error(invoke("export-merged", lora, "link", "--base-model", BASE, "--force"))
    assert "symbolic link" in line
    assert tree(workspace) == before


def test_export_merged_writes_a_new_or_empty_directory_and_replaces_only_with_force(
    workspace, lora
):
    before = tree(workspace)
    for out in ("merged", "empty"):
        result = invoke("export-merged", lora, out, "--base-model", BASE)
        assert result.exit_code == 0, result.output
        assert (workspace / out / "config.json").is_file()
    after = tree(workspace)
    assert {k: v for k, v in after.items() if not k.startswith(("merged", "empty"))} == {
        k: v for k, v in before.items() if k != "empty"
    }
    result = invoke("export-merged", lora, "notes", "--base-model", BASE, "--force")
    assert result.exit_code == 0, result.output
    assert (workspace / "notes" / "config.json").is_file()
    assert not (workspace / "notes" / "keep.txt").exists()
    # an export from a registry version (to outside it) is fine
    version = workspace / "registry" / "router" / "v1"
    result = invoke("export-merged", version, "from-registry", "--base-model", BASE)
    assert result.exit_code == 0, result.output
