import itertools
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from adaptune.errors import UserError
from adaptune.registry import (
    list_models,
    list_versions,
    promote,
    read_aliases,
    read_index,
    register_and_promote,
    register_version,
    resolve_version,
    rollback,
)

REPO = Path(__file__).resolve().parent.parent


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file below root (the lock file aside) with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def test_versions_are_numbered_immutable_and_carry_metadata(adapter, tmp_path):
    reg = tmp_path / "reg"
    first = register_version(reg, "router", adapter, {"run_id": "r1", "data_sha256": "abc"})
    second = register_version(reg, "router", adapter, {"run_id": "r2"})
    assert (first.version, second.version) == (1, 2)
    assert first.metadata["run_id"] == "r1" and first.metadata["data_sha256"] == "abc"
    assert [v.ref for v in list_versions(reg, "router")] == ["router@v1", "router@v2"]
    assert (first.path / "adapter_model.safetensors").read_bytes() == (
        adapter / "adapter_model.safetensors"
    ).read_bytes()
    assert not (first.path / "adapter_model.safetensors").stat().st_mode & 0o222
    assert sorted(p.name for p in (reg / "router").iterdir()) == [".lock", "index.json", "v1", "v2"]
    assert list_models(reg) == ["router"]
    assert read_aliases(reg, "router") == {}, "registering alone does not promote"


def test_a_directory_that_is_not_ours_is_kept_and_its_number_skipped(adapter, tmp_path):
    taken = tmp_path / "router" / "v1"
    taken.mkdir(parents=True)
    (taken / "keep").write_text("someone else's")
    version = register_version(tmp_path, "router", adapter, {})
    assert version.version == 2
    assert (taken / "keep").read_text() == "someone else's"
    assert [v.version for v in list_versions(tmp_path, "router")] == [2]


@pytest.mark.parametrize("name", ["../escape", "a/b", "", "UPPER", "x" * 65, "a..b", "/abs"])
def test_unsafe_names_are_rejected(adapter, tmp_path, name):
    with pytest.raises(UserError, match="invalid model name"):
        register_version(tmp_path, name, adapter, {})
    with pytest.raises(UserError, match="invalid model name"):
        resolve_version(tmp_path, name)
    assert not list(tmp_path.parent.glob("escape"))


def test_a_directory_without_adapter_files_is_rejected(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"missing adapter_config\.json"):
        register_version(tmp_path / "reg", "router", tmp_path / "empty", {})
    assert not list_versions(tmp_path / "reg", "router")


def test_register_promote_and_rollback_move_the_aliases(adapter, tmp_path):
    reg = tmp_path / "reg"
    for run in ("r1", "r2", "r3"):
        register_version(reg, "router", adapter, {"run_id": run}, promote=True)
    assert read_aliases(reg, "router") == {"production": 3, "previous": 2}
    assert resolve_version(reg, "router").metadata["run_id"] == "r3"

    assert rollback(reg, "router") == {"production": 2, "previous": 3}
    assert resolve_version(reg, "router", "production").metadata["run_id"] == "r2"
    assert rollback(reg, "router") == {"production": 3, "previous": 2}, "a rollback undoes one"

    assert promote(reg, "router", "v1") == {"production": 1, "previous": 3}
    assert resolve_version(reg, "router", "previous").version == 3
    history = read_index(reg, "router").history
    assert [(h["action"], h["version"]) for h in history] == [
        ("register", 1),
        ("register", 2),
        ("register", 3),
        ("rollback", 2),
        ("rollback", 3),
        ("promote", 1),
    ]


def test_refs_resolve_and_bad_ones_say_why(adapter, tmp_path):
    register_version(tmp_path, "router", adapter, {}, promote=True)
    register_version(tmp_path, "router", adapter, {})
    assert resolve_version(tmp_path, "router").version == 1
    assert resolve_version(tmp_path, "router", "latest").version == 2
    assert resolve_version(tmp_path, "router", "v2").version == 2
    assert resolve_version(tmp_path, "router", "2").version == 2
    with pytest.raises(UserError, match="no version v9"):
        resolve_version(tmp_path, "router", "v9")
    with pytest.raises(UserError, match="no 'previous' version"):
        resolve_version(tmp_path, "router", "previous")
    with pytest.raises(UserError, match="bad version 'stable'"):
        resolve_version(tmp_path, "router", "stable")
    with pytest.raises(UserError, match="no model 'other'"):
        resolve_version(tmp_path, "other")
    with pytest.raises(UserError, match="no previous version"):
        rollback(tmp_path, "router")
    with pytest.raises(UserError, match="no version v7"):
        promote(tmp_path, "router", "v7")
    with pytest.raises(UserError, match="takes a version number"):
        promote(tmp_path, "router", "production")


KILL_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import adaptune.registry.index as index
    import adaptune.registry.local as local

    def die(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

    registry, adapter, where = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    if where == "copy":  # killed while copying the adapter files
        real_copy = local.shutil.copy2
        def copy_one_then_die(src, dst, **kw):
            real_copy(src, dst, **kw)
            die()
        real_copytree = local.shutil.copytree
        local.shutil.copytree = lambda src, dst, **kw: real_copytree(
            src, dst, **{**kw, "copy_function": copy_one_then_die}
        )
    elif where == "metadata":  # killed while writing version.json
        local.write_json_atomic = die
    elif where == "commit":  # killed after the version directory is in place
        index.write_json_atomic = die
    elif where == "index-replace":  # killed with the new index written but not yet renamed
        def half_write(path, data):
            (path.parent / f".{path.name}.half.tmp").write_text("{half")
            die()
        index.write_json_atomic = half_write
    elif where == "marker":  # killed after the commit, before the pending marker is removed
        import pathlib
        pathlib.Path.unlink = lambda self, missing_ok=False: die()
    local.register_version(registry, "router", adapter, {"run_id": "killed"}, promote=True)
    """
)


@pytest.mark.parametrize("where", ["copy", "metadata", "commit", "index-replace"])
def test_a_registration_killed_mid_write_leaves_the_registry_unchanged(adapter, tmp_path, where):
    reg = tmp_path / "reg"
    register_version(reg, "router", adapter, {"run_id": "r1"}, promote=True)
    before = snapshot(reg)
    done = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(reg), str(adapter), where],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == -9, done.stderr
    assert read_index(reg, "router").versions == [1]
    assert resolve_version(reg, "router").metadata["run_id"] == "r1"
    after = snapshot(reg)
    assert {k: v for k, v in after.items() if k in before} == before
    # The next registration clears what the killed one left and takes the next number. Killed
    # after its version directory was complete, the killed one is a version (never deleted):
    # listed by the next writer, unpromoted.
    version = register_version(reg, "router", adapter, {"run_id": "r2"}, promote=True)
    complete = where in ("commit", "index-replace")
    assert version.version == (3 if complete else 2)
    names = sorted(p.name for p in (reg / "router").iterdir())
    assert names == [".lock", "index.json", "v1", "v2", *(["v3"] if complete else [])]
    assert read_aliases(reg, "router") == {"production": version.version, "previous": 1}
    if complete:
        assert resolve_version(reg, "router", "v2").metadata["run_id"] == "killed"
        assert not (reg / "router" / "v2" / ".pending").exists()
        assert read_index(reg, "router").history[-2]["action"] == "recover"


DEPLOY_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from adaptune.registry import register_version
    for i in range(int(sys.argv[4])):
        register_version(
            Path(sys.argv[1]), "router", Path(sys.argv[2]),
            {"run_id": f"{sys.argv[3]}-{i}"}, promote=True,
        )
    """
)


def test_concurrent_registrations_serialise(adapter, tmp_path):
    reg = tmp_path / "reg"
    writers, each = 4, 3
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", DEPLOY_SCRIPT, str(reg), str(adapter), f"w{w}", str(each)],
            cwd=REPO,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(writers)
    ]
    for proc in procs:
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    index = read_index(reg, "router")
    assert index.versions == list(range(1, writers * each + 1))
    runs = {v.metadata["run_id"] for v in list_versions(reg, "router")}
    assert runs == {f"w{w}-{i}" for w in range(writers) for i in range(each)}
    # Each registration saw the one before it: the history is one unbroken chain of production.
    history = index.history
    assert len(history) == writers * each
    for earlier, later in itertools.pairwise(history):
        assert later["aliases"]["previous"] == earlier["aliases"]["production"]
    assert index.aliases["production"] == history[-1]["version"]
    on_disk = json.loads((reg / "router" / "index.json").read_text())
    assert on_disk["versions"] == index.versions


def test_a_version_evaluated_against_a_moved_production_is_registered_not_promoted(
    adapter, tmp_path
):
    first = register_and_promote(tmp_path, "router", adapter, {}, evaluated_against=0)
    second = register_and_promote(tmp_path, "router", adapter, {}, evaluated_against=1)
    assert (first.promoted, second.promoted) == (True, True)
    # evaluated while v1 served, but v2 was promoted meanwhile: the comparison is stale
    late = register_and_promote(tmp_path, "router", adapter, {}, evaluated_against=1)
    assert not late.promoted
    assert late.note.startswith("not promoted: production moved from v1 to v2")
    assert late.version.version == 3
    assert read_aliases(tmp_path, "router") == {"production": 2, "previous": 1}
    # it is a version all the same, and can be promoted by hand
    assert promote(tmp_path, "router", "v3") == {"production": 3, "previous": 2}


def test_a_registry_from_before_indexes_is_read_and_kept(tmp_path):
    for number in (1, 2):
        old = tmp_path / "router" / f"v{number}"
        old.mkdir(parents=True)
        (old / "adapter_config.json").write_text("{}")
        (old / "adapter_model.safetensors").write_bytes(b"weights")
        (old / "version.json").write_text(json.dumps({"model": "router", "version": number}))
    assert list_models(tmp_path) == ["router"]
    assert [v.version for v in list_versions(tmp_path, "router")] == [1, 2]
    assert promote(tmp_path, "router", "v1") == {"production": 1}
    assert read_index(tmp_path, "router").versions == [1, 2]
    assert (tmp_path / "router" / "v2" / "adapter_model.safetensors").read_bytes() == b"weights"


def test_a_mistyped_model_is_an_error_that_creates_nothing(tmp_path):
    with pytest.raises(UserError, match="no model 'routr'"):
        promote(tmp_path, "routr", "v1")
    with pytest.raises(UserError, match="no model 'routr'"):
        rollback(tmp_path, "routr")
    assert not list(tmp_path.iterdir())


def test_models_list_skips_directories_that_are_not_models(adapter, tmp_path):
    register_version(tmp_path, "router", adapter, {})
    (tmp_path / "Not A Model").mkdir()
    (tmp_path / "Not A Model" / "index.json").write_text("{}")
    (tmp_path / "empty").mkdir()
    assert list_models(tmp_path) == ["router"]


def test_a_retried_registration_of_the_same_run_returns_its_version_not_a_copy(adapter, tmp_path):
    first = register_and_promote(tmp_path, "router", adapter, {"run_id": "job-7"}, 0)
    # the task is retried after its commit: evaluated against none again, yet no duplicate
    again = register_and_promote(tmp_path, "router", adapter, {"run_id": "job-7"}, 0)
    assert (again.version.version, again.promoted) == (first.version.version, True)
    assert [v.version for v in list_versions(tmp_path, "router")] == [1]
    # another run with the same adapter is a new version
    other = register_and_promote(tmp_path, "router", adapter, {"run_id": "job-8"}, 1)
    assert other.version.version == 2 and other.promoted


def test_a_double_fault_never_deletes_a_committed_version_nor_reuses_its_number(adapter, tmp_path):
    # Fault 1: a registration killed after its commit, before its pending marker was removed.
    reg = tmp_path / "reg"
    register_version(reg, "router", adapter, {"run_id": "r1"}, promote=True)
    done = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(reg), str(adapter), "marker"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert done.returncode == -9, done.stderr
    assert (reg / "router" / "v2" / ".pending").exists()
    assert read_index(reg, "router").versions == [1, 2]
    v2_files = {k: v for k, v in snapshot(reg).items() if k.startswith("router/v2/")}
    # Fault 2: the index is lost. Readers rebuild it from the versions on disk...
    (reg / "router" / "index.json").unlink()
    assert read_index(reg, "router").versions == [1, 2]
    assert list_models(reg) == ["router"]
    # ...and so does the next writer: v2 is kept (its marker dropped), the new version is v3.
    version = register_version(reg, "router", adapter, {"run_id": "r3"}, promote=True)
    assert version.version == 3
    index = read_index(reg, "router")
    assert index.versions == [1, 2, 3]
    assert index.history[0]["action"] == "rebuild"
    after = snapshot(reg)
    assert {
        k: v for k, v in after.items() if k.startswith("router/v2/") and ".pending" not in k
    } == {k: v for k, v in v2_files.items() if ".pending" not in k}
    assert resolve_version(reg, "router", "v2").metadata["run_id"] == "killed"
    # A retry of the killed run gets its version back rather than a copy.
    again = register_version(reg, "router", adapter, {"run_id": "killed"})
    assert again.version == 2 and read_index(reg, "router").versions == [1, 2, 3]


def test_recovery_removes_only_what_holds_no_version(adapter, tmp_path):
    reg = tmp_path / "reg"
    register_version(reg, "router", adapter, {"run_id": "r1"})
    model = reg / "router"
    # an unlisted complete version without a marker (say, an index restored from a backup)
    unlisted = model / "v2"
    unlisted.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        (unlisted / name).write_bytes((adapter / name).read_bytes())
    (unlisted / "version.json").write_text(json.dumps({"model": "router", "version": 2}))
    # an uncommitted copy that never got its files: removable
    partial = model / "v3"
    partial.mkdir()
    (partial / ".pending").touch()
    (partial / "adapter_config.json").write_text("{}")
    version = register_version(reg, "router", adapter, {"run_id": "r3"})
    # v2 is listed, the partial v3 removed (it never was a version) and its number taken anew
    assert version.version == 3
    assert read_index(reg, "router").versions == [1, 2, 3]
    assert json.loads((unlisted / "version.json").read_text())["version"] == 2
    assert not (partial / ".pending").exists()
    assert resolve_version(reg, "router", "v3").metadata["run_id"] == "r3"


def test_registration_records_each_files_sha256(adapter, tmp_path):
    from adaptune.hashing import sha256_file

    (adapter / "README.md").write_text("notes")
    version = register_version(tmp_path, "router", adapter, {})
    files = version.metadata["files"]
    # lineage.json is written before version.json: its checksum is recorded too
    assert set(files) == {
        "adapter_config.json",
        "adapter_model.safetensors",
        "README.md",
        "lineage.json",
    }
    for name, digest in files.items():
        assert digest == sha256_file(version.path / name)
    assert json.loads((version.path / "version.json").read_text())["files"] == files
