"""A broken runs store or run directory: one line naming the file, or a listing that goes on.

Three runs are recorded as the runner records them (store rows, executions, a registered
version, and each run's manifest.json, summary.json and params.yaml); then one thing is broken:
the store file itself, one run's row, or one run's files. ``runs list`` keeps listing every
other run and names the broken one (exit 0); a command that cannot do its job says why in one
line naming the file (exit 2): ``runs show``, ``runs compare``, ``lineage``, ``run
--if-changed``, ``reproduce``. No traceback, and nothing in the runs directory changes: a
corrupt store is refused, never replaced.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest
from hostile import invoke, one_line_error, tree

from adaptune.errors import UserError
from adaptune.hashing import sha256_file
from adaptune.lineage.store import MetadataStore

pytestmark = pytest.mark.hostile

REPO = Path(__file__).resolve().parents[1]
COMPILED = REPO / "compiled" / "adapter_tuning.yaml"
TRAIN = REPO / "data" / "sample" / "train.jsonl"
RUNS = ("run-a", "run-b", "run-c")  # oldest first; run-b is the one broken
BROKEN, OTHER = "run-b", "run-c"
STUB = "stub: the pipeline would run now"


def _manifest(run_id: str) -> dict:
    params = {"train_data": str(TRAIN), "model_name": "router", "run_id": run_id}
    return {
        "run_id": run_id,
        "compiled_spec": {"path": str(COMPILED), "sha256": sha256_file(COMPILED)},
        "params": params,
        "data_sha256": {"train_data": sha256_file(TRAIN)},
        "metrics": {"tuned": {"exact_match": 0.5}, "base": {"exact_match": 0.1}},
        "gate": {"metric": "exact_match", "passed": True},
        "adapter_sha256": "a" * 64,
        "status": "succeeded",
    }


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    """A runs directory with three finished runs; run-b registered router@v1."""
    root = tmp_path / "runs"
    store = MetadataStore(root)
    for number, run_id in enumerate(RUNS, start=1):
        run_dir = root / run_id
        run_dir.mkdir()
        store.start_run(
            run_id,
            {"model_name": "router", "gate_metric": "exact_match", "run_dir": str(run_dir)},
        )
        manifest = _manifest(run_id)
        (run_dir / "manifest.json").write_text(json.dumps(manifest))
        (run_dir / "summary.json").write_text(json.dumps({"status": "succeeded"}))
        (run_dir / "params.yaml").write_text(f"model_name: router\nrun_id: {run_id}\n")
        adapter = store.put_artifact("adapter", f"{run_dir}/adapter", "b" * 64, {})
        version = store.put_artifact(
            "registry_version",
            f"/registry/router/v{number}",
            "c" * 64,
            {"model": "router", "version": number},
        )
        store.put_execution(
            run_id,
            "register-version",
            {"model_name": "router"},
            "succeeded",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:01",
            None,
            {"adapter": adapter},
            {"registered": version},
        )
        store.finish_run(
            run_id,
            "succeeded",
            metrics=manifest["metrics"],
            gate=manifest["gate"],
            registry={"model_ref": f"router@v{number}"},
            fingerprint="f" * 64,
        )
    store.close()
    return root


@pytest.fixture
def pipeline_calls(monkeypatch) -> list[str]:
    """The runner stubbed: a command that gets as far as running the pipeline says so.

    Like ``run_local``, the stub opens the store before anything runs (and so refuses a
    corrupt one the same way); then, instead of running the pipeline, it stops with ``STUB``.
    """
    from adaptune.runner import run

    calls: list[str] = []

    def run_local(compiled, params, runs_root, experiment=None, run_id=None, **shown):
        MetadataStore(runs_root).close()
        calls.append(str(runs_root))
        raise UserError(STUB)

    monkeypatch.setattr(run, "run_local", run_local)
    return calls


def commands(runs: Path) -> dict[str, list[object]]:
    """Every command that reads the runs directory, as a user types it."""
    where = ["--runs-dir", runs]
    return {
        "runs list": ["runs", "list", *where],
        "runs list --experiment": ["runs", "list", "--experiment", "exp", *where],
        "runs show": ["runs", "show", OTHER, *where],
        "runs compare": ["runs", "compare", "run-a", OTHER, *where],
        "lineage": ["lineage", "router@v3", *where, "--json"],
        "run --if-changed": ["run", "--train-data", TRAIN, *where, "--if-changed"],
        "reproduce": ["reproduce", OTHER, *where],
    }


def sql(runs: Path, statement: str, *args: object) -> None:
    db = sqlite3.connect(runs / "metadata.sqlite")
    db.execute(statement, args)
    db.commit()
    db.close()


# -- the store file itself ------------------------------------------------------------------


def _store(runs: Path) -> Path:
    return runs / "metadata.sqlite"


def _garbage(runs: Path) -> None:
    _store(runs).write_bytes(b"this is not a database\n" * 100)


def _random_bytes(runs: Path) -> None:
    _store(runs).write_bytes(os.urandom(8192))


def _header_then_zeros(runs: Path) -> None:
    _store(runs).write_bytes(b"SQLite format 3\x00" + b"\x00" * 8000)


def _header_then_garbage(runs: Path) -> None:
    data = _store(runs).read_bytes()
    _store(runs).write_bytes(data[:100] + os.urandom(len(data) - 100))


def _truncated_to_the_header(runs: Path) -> None:
    _store(runs).write_bytes(_store(runs).read_bytes()[:100])


def _a_directory(runs: Path) -> None:
    _store(runs).unlink()
    _store(runs).mkdir()


def _a_dangling_symlink(runs: Path) -> None:
    _store(runs).unlink()
    _store(runs).symlink_to(runs / "nowhere.sqlite")


def _another_programs_database(runs: Path) -> None:
    _store(runs).unlink()
    db = sqlite3.connect(_store(runs))
    db.execute("CREATE TABLE contexts (id INTEGER, colour TEXT)")
    db.commit()
    db.close()


def _a_table_dropped(runs: Path) -> None:
    sql(runs, "DROP TABLE parent_contexts")


def _contexts_without_properties(runs: Path) -> None:
    sql(runs, "ALTER TABLE contexts DROP COLUMN properties")


STORE_CORRUPTIONS = {
    "garbage text": _garbage,
    "random bytes": _random_bytes,
    "a SQLite header, then zeros": _header_then_zeros,
    "a SQLite header, then garbage pages": _header_then_garbage,
    "truncated to its header": _truncated_to_the_header,
    "a directory": _a_directory,
    "a dangling symlink": _a_dangling_symlink,
    "another program's database": _another_programs_database,
    "a table dropped": _a_table_dropped,
    "a column dropped": _contexts_without_properties,
}


@pytest.mark.parametrize("command", list(commands(Path("runs"))))
@pytest.mark.parametrize("corruption", list(STORE_CORRUPTIONS))
def test_a_corrupt_store_is_refused_in_one_line_and_left_as_it_is(
    runs, pipeline_calls, corruption, command
):
    STORE_CORRUPTIONS[corruption](runs)
    before = tree(runs)
    result = invoke(*commands(runs)[command])
    if command == "runs compare":  # reads the two manifests only: the store does not matter
        assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    else:
        line = one_line_error(result)
        assert str(_store(runs)) in line and "move it aside" in line, line
        assert pipeline_calls == []  # refused before anything ran
    assert tree(runs) == before


@pytest.mark.parametrize("command", ["runs list", "run --if-changed"])
def test_a_locked_store_is_named_after_a_short_wait(runs, pipeline_calls, monkeypatch, command):
    from adaptune.lineage import store

    monkeypatch.setattr(store, "READ_BUSY_TIMEOUT_MS", 200)
    monkeypatch.setattr(store, "BUSY_TIMEOUT_MS", 200)
    holder = sqlite3.connect(_store(runs), isolation_level=None)
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("UPDATE contexts SET type = type")
    try:
        line = one_line_error(invoke(*commands(runs)[command]))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert str(_store(runs)) in line and "locked" in line, line
    assert pipeline_calls == []
    assert "run-a" in invoke(*commands(runs)["runs list"]).output  # usable once released


@pytest.mark.parametrize("state", ["missing", "zero bytes", "no tables"])
def test_reading_an_empty_or_missing_store_creates_nothing(tmp_path, state):
    runs = tmp_path / "runs"
    if state != "missing":
        runs.mkdir()
        _store(runs).touch()
    if state == "no tables":
        sqlite3.connect(_store(runs)).execute("PRAGMA user_version = 1").connection.close()
    before = tree(runs)
    listed = invoke("runs", "list", "--runs-dir", runs)
    assert listed.exit_code == 0 and "Traceback" not in listed.output, listed.output
    line = one_line_error(invoke("runs", "show", "run-a", "--runs-dir", runs))
    assert "no run 'run-a'" in line
    line = one_line_error(invoke("lineage", "router", "--runs-dir", runs))
    assert "no recorded registration of router" in line
    assert tree(runs) == before and runs.exists() == (state != "missing")


def test_a_runs_dir_that_is_a_file_is_one_line(tmp_path):
    runs = tmp_path / "runs"
    runs.write_text("not a directory")
    for args in (["runs", "list"], ["runs", "show", "run-a"], ["lineage", "router"]):
        line = one_line_error(invoke(*args, "--runs-dir", runs))
        assert str(runs) in line
    assert runs.read_text() == "not a directory"


# -- one run's row in the store -------------------------------------------------------------


def _properties(runs: Path, value: object) -> None:
    sql(runs, "UPDATE contexts SET properties = ? WHERE name = ?", value, BROKEN)


def _field(key: str, value: object, **more: object):
    def corrupt(runs: Path) -> None:
        db = sqlite3.connect(_store(runs))
        (raw,) = db.execute("SELECT properties FROM contexts WHERE name = ?", (BROKEN,)).fetchone()
        db.close()
        _properties(runs, json.dumps({**json.loads(raw), key: value, **more}))

    return corrupt


ROW_CORRUPTIONS = {
    "numeric model_name": _field("model_name", 7),
    "list model_name": _field("model_name", ["a", "b"]),
    "mapping model_name": _field("model_name", {"x": 1}),
    "null status": _field("status", None),
    "numeric status": _field("status", 3),
    "numeric start_time": _field("start_time", 1767225600),
    "null start_time": _field("start_time", None),
    "numeric gate_metric": _field("gate_metric", 0.5),
    "gate a string": _field("gate", "passed"),
    "gate.passed a string": _field("gate", {"metric": "exact_match", "passed": "yes"}),
    "metrics a number": _field("metrics", 1),
    "metrics.tuned a list": _field("metrics", {"tuned": [0.5]}),
    "tuned score a string": _field("metrics", {"tuned": {"exact_match": "high"}}),
    "tuned score a bool": _field("metrics", {"tuned": {"exact_match": True}}),
    "registry a list": _field("registry", ["router@v2"]),
    "registry.model_ref a number": _field("registry", {"model_ref": 2}),
    "run_dir a number": _field("run_dir", 5),
    "a running run with a text pid": _field("status", "running", pid="abc"),
    "a running run with a float pid": _field("status", "running", pid=1.5),
    "a running run with a bool pid": _field("status", "running", pid=True),
    "a run_id key in the properties": _field("run_id", 12),
    "markup in a field": _field("model_name", "[/bold][red]x"),
    "properties: JSON garbage": lambda runs: _properties(runs, "{not json"),
    "properties: a JSON list": lambda runs: _properties(runs, "[1, 2]"),
    "properties: a JSON string": lambda runs: _properties(runs, '"text"'),
    "properties: JSON null": lambda runs: _properties(runs, "null"),
    "properties: an integer": lambda runs: _properties(runs, 5),
    "properties: binary": lambda runs: _properties(runs, b"\xff\xfe\x00binary"),
    "properties: empty": lambda runs: _properties(runs, ""),
    "run id a number": lambda runs: sql(
        runs, "UPDATE contexts SET name = 42 WHERE name = ?", BROKEN
    ),
    "run id with markup": lambda runs: sql(
        runs, "UPDATE contexts SET name = '[/x]run' WHERE name = ?", BROKEN
    ),
    "execution parameters: JSON garbage": lambda runs: sql(
        runs, "UPDATE executions SET parameters = '{' WHERE run_id = ?", OTHER
    ),
    "execution parameters: a list": lambda runs: sql(
        runs, "UPDATE executions SET parameters = '[]' WHERE run_id = ?", OTHER
    ),
    "execution status: null-like number": lambda runs: sql(
        runs, "UPDATE executions SET status = 0, start_time = 5 WHERE run_id = ?", OTHER
    ),
    "artifact properties: garbage": lambda runs: sql(
        runs, "UPDATE artifacts SET properties = 'nope' WHERE type = 'adapter'"
    ),
    "artifact sha256: a number": lambda runs: sql(
        runs, "UPDATE artifacts SET sha256 = 12 WHERE type = 'adapter'"
    ),
    "registered version: a text": lambda runs: sql(
        runs,
        "UPDATE artifacts SET properties = ? WHERE uri = '/registry/router/v2'",
        json.dumps({"model": "router", "version": "2"}),
    ),
}


@pytest.mark.parametrize("corruption", list(ROW_CORRUPTIONS))
def test_one_broken_row_is_listed_with_its_problem_and_every_other_run_keeps_working(
    runs, pipeline_calls, corruption
):
    ROW_CORRUPTIONS[corruption](runs)
    before = tree(runs)
    listed = invoke("runs", "list", "--runs-dir", runs)
    assert listed.exit_code == 0 and "Traceback" not in listed.output, listed.output
    for run_id in ("run-a", OTHER):
        assert run_id in listed.stdout
    for warning in listed.stderr.splitlines():
        assert warning.startswith("adaptune: warning: run "), warning
    shown = invoke("runs", "show", OTHER, "--runs-dir", runs)
    assert shown.exit_code == 0 and json.loads(shown.stdout)["run_id"] == OTHER, shown.output
    compared = invoke("runs", "compare", "run-a", OTHER, "--runs-dir", runs)
    assert compared.exit_code == 0 and "Traceback" not in compared.output, compared.output
    lineage = invoke("lineage", "router@v3", "--runs-dir", runs, "--json")
    assert lineage.exit_code == 0, lineage.output
    assert json.loads(lineage.stdout)["properties"]["version"] == 3
    tree_view = invoke("lineage", "router", "--runs-dir", runs)
    assert tree_view.exit_code == 0 and "Traceback" not in tree_view.output, tree_view.output
    # --if-changed reads every run: it gets as far as running (stubbed), not a crash
    line = one_line_error(invoke(*commands(runs)["run --if-changed"]))
    assert line.endswith(STUB)
    assert tree(runs) == before


@pytest.mark.parametrize(
    ("corruption", "named"),
    [
        ("numeric model_name", "model_name is 7 (int), not a text"),
        ("null status", "status is None (null), not a text"),
        ("gate a string", "gate is 'passed' (str), not a mapping"),
        ("properties: JSON garbage", "properties in"),
        ("properties: binary", "properties in"),
    ],
)
def test_the_broken_row_is_named_with_its_fault(runs, corruption, named):
    ROW_CORRUPTIONS[corruption](runs)
    listed = invoke("runs", "list", "--runs-dir", runs)
    assert listed.exit_code == 0
    (warning,) = listed.stderr.splitlines()
    assert warning.startswith(f"adaptune: warning: run {BROKEN}: ") and named in warning, warning
    assert BROKEN in listed.stdout


# -- one run's files --------------------------------------------------------------------------


def _manifest_file(runs: Path) -> Path:
    return runs / OTHER / "manifest.json"


def _manifest_bytes(data: bytes):
    return lambda runs: _manifest_file(runs).write_bytes(data)


def _manifest_change(**changes):
    def corrupt(runs: Path) -> None:
        manifest = json.loads(_manifest_file(runs).read_text())
        for key, value in changes.items():
            if value is KeyError:
                manifest.pop(key)
            else:
                manifest[key] = value
        _manifest_file(runs).write_text(json.dumps(manifest))

    return corrupt


def _run_dir_gone(runs: Path) -> None:
    for path in sorted((runs / OTHER).iterdir()):
        path.unlink()
    (runs / OTHER).rmdir()


def _manifest_gone(runs: Path) -> None:
    _manifest_file(runs).unlink()


def _manifest_a_directory(runs: Path) -> None:
    _manifest_file(runs).unlink()
    _manifest_file(runs).mkdir()


# Each: the corruption and the commands that must refuse (the others still work).
SHOW, COMPARE, REPRODUCE = "runs show", "runs compare", "reproduce"
ALL = (SHOW, COMPARE, REPRODUCE)
FILE_CORRUPTIONS = {
    "run directory missing": (_run_dir_gone, ALL, "directory"),
    "manifest missing": (_manifest_gone, ALL, "manifest.json"),
    "manifest a directory": (_manifest_a_directory, ALL, "manifest.json"),
    "manifest zero bytes": (_manifest_bytes(b""), ALL, "not JSON"),
    "manifest truncated": (_manifest_bytes(b'{"run_id": "run-c", "par'), ALL, "not JSON"),
    "manifest binary": (_manifest_bytes(b"\xff\xd8\xff\xe0 binary"), ALL, "not UTF-8"),
    "manifest UTF-16": (_manifest_bytes('{"run_id": 1}'.encode("utf-16")), ALL, "not UTF-8"),
    "manifest a JSON list": (_manifest_bytes(b"[1, 2, 3]"), ALL, "not an object"),
    "manifest a JSON string": (_manifest_bytes(b'"manifest"'), ALL, "not an object"),
    "manifest JSON null": (_manifest_bytes(b"null"), ALL, "not an object"),
    "manifest nested too deep": (_manifest_bytes(b"[" * 100_000 + b"]" * 100_000), ALL, "JSON"),
    "manifest without params": (_manifest_change(params=KeyError), (COMPARE, REPRODUCE), "params"),
    "params a list": (_manifest_change(params=["a"]), (COMPARE, REPRODUCE), "params"),
    "params a string": (_manifest_change(params="x"), (COMPARE, REPRODUCE), "params"),
    "manifest without compiled_spec": (
        _manifest_change(compiled_spec=KeyError),
        (REPRODUCE,),
        "compiled_spec",
    ),
    "compiled_spec a string": (_manifest_change(compiled_spec="x.yaml"), (REPRODUCE,), "compiled"),
    "compiled_spec.path a number": (
        _manifest_change(compiled_spec={"path": 3, "sha256": "x"}),
        (REPRODUCE,),
        "compiled_spec.path",
    ),
    "data_sha256 a string": (_manifest_change(data_sha256="abc"), (COMPARE, REPRODUCE), "data"),
    "data_sha256 for a parameter not there": (
        _manifest_change(data_sha256={"eval_data": "d" * 64}),
        (REPRODUCE,),
        "params.eval_data",
    ),
    "data_sha256 value a number": (
        _manifest_change(data_sha256={"train_data": 5}),
        (COMPARE, REPRODUCE),
        "data_sha256.train_data",
    ),
    "metrics a list": (_manifest_change(metrics=[1]), (COMPARE,), "metrics"),
    "gate a string": (_manifest_change(gate="passed"), (COMPARE,), "gate"),
    "adapter_sha256 a number": (
        _manifest_change(adapter_sha256=5),
        (COMPARE, REPRODUCE),
        "adapter",
    ),
}


@pytest.mark.parametrize("command", ALL)
@pytest.mark.parametrize("corruption", list(FILE_CORRUPTIONS))
def test_a_broken_run_directory_is_one_line_for_what_needs_it(
    runs, pipeline_calls, corruption, command
):
    corrupt, refusing, named = FILE_CORRUPTIONS[corruption]
    corrupt(runs)
    before = tree(runs)
    result = invoke(*commands(runs)[command])
    if command in refusing:
        line = one_line_error(result)
        assert OTHER in line and named in line, line
        assert pipeline_calls == []
    elif command == REPRODUCE:  # the manifest holds what reproduce needs: it gets to run
        assert one_line_error(result).endswith(STUB)
    else:  # a field this command does not read
        assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert tree(runs) == before


def test_runs_list_keeps_listing_around_broken_run_directories(runs):
    _run_dir_gone(runs)  # run-c is gone; run-a's manifest is garbage
    (runs / "run-a" / "manifest.json").write_bytes(b"\x00\x01")
    before = tree(runs)
    listed = invoke("runs", "list", "--runs-dir", runs)
    assert listed.exit_code == 0, listed.output
    assert all(run_id in listed.stdout for run_id in RUNS)
    (warning,) = listed.stderr.splitlines()
    assert f"run {OTHER}: its directory" in warning and "missing" in warning
    assert tree(runs) == before


UNREAD_FILES = {
    "summary.json binary": ("summary.json", os.urandom(256) + b"\xff"),
    "summary.json truncated": ("summary.json", b'{"status": '),
    "params.yaml with a python tag": ("params.yaml", b"!!python/object/apply:os.system ['true']\n"),
    "params.yaml with a custom tag": ("params.yaml", b"model_name: !secret router\n"),
    "params.yaml an alias bomb": ("params.yaml", b"a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"),
    "params.yaml binary": ("params.yaml", b"\xff\xfe\x00\x01"),
    "run.log binary": ("run.log", os.urandom(128)),
}


@pytest.mark.parametrize("name", list(UNREAD_FILES))
def test_files_beside_the_manifest_do_not_break_any_command(runs, pipeline_calls, name):
    file, data = UNREAD_FILES[name]
    (runs / OTHER / file).write_bytes(data)
    before = tree(runs)
    for command in ("runs list", "runs show", "runs compare", "lineage"):
        result = invoke(*commands(runs)[command])
        assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    assert one_line_error(invoke(*commands(runs)["reproduce"])).endswith(STUB)
    assert tree(runs) == before


@pytest.mark.parametrize("run_id", ["../run-a", "..", ".", "run-a/..", "a\\b", "/etc"])
def test_a_run_id_that_is_a_path_is_refused(runs, run_id):
    before = tree(runs)
    for command in (["runs", "show"], ["reproduce"]):
        line = one_line_error(invoke(*command, run_id, "--runs-dir", runs))
        assert "not a run id" in line
    assert tree(runs) == before
