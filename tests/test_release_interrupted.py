# ruff: noqa: F811  (the Vertex fixtures are imported by name)
"""A release interrupted between its Vertex AI deploy and its local promotion, and its recovery.

Before the deployment is made the release writes ``<registry>/<model>/pending-release.json``;
it removes it once the version is production or the deployment is undone. A kill in between
leaves it: ``models list``/``show`` warn in one line, ``promote``/``rollback`` refuse (promoting
the release's own version completes it), and the recovery a user does ends consistent: local
``production`` on the new version and the endpoint serving it, or neither. Tested through the
release subprocess of test_release_hostile (kill -9 at each instant) and through the whole DAG:
``adaptune run`` whose deploy task is killed (the runner settles it at its end), and whose whole
process group is killed at the instant (``adaptune run --resume`` completes it; a new run undoes
it and releases its own version).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import COMPILED, REPO
from hostile import invoke, one_line_error, tree
from test_release_hostile import (  # noqa: F401  (fixtures)
    METADATA,
    MODEL,
    RUN_ID,
    _endpoint_state,
    _release,
    _vertex_deploy,
    _write_adapter,
    metadata_server,
    served,
    vertex_run_config,
    world,
)
from test_vertex_cli import adc, env  # noqa: F401  (fixtures)
from test_vertex_fakes import (  # noqa: F401  (fixtures)
    BUCKET,
    LOCATION,
    PROJECT,
    cloud,
    fake_vertex,
    gcs_emulator,
)

from adaptune.registry import read_aliases, resolve_version, verify_version
from adaptune.registry.pending_release import (
    PENDING_RELEASE_FILE,
    PendingRelease,
    read_pending_release,
    write_pending_release,
)

pytestmark = pytest.mark.hostile

RECORD_INSTANTS = ["release:after-record", "release:after-deploy", "release:before-promote"]
"""Instants a kill leaves the record behind with production not moved (v1)."""


def _record_path(registry: Path) -> Path:
    return registry / MODEL / PENDING_RELEASE_FILE


def _v3_names(fake, endpoint: str) -> list[str]:
    return [name for _, name in _endpoint_state(fake, endpoint)[0] if name == f"{MODEL}-v3"]


@pytest.fixture
def interrupted(served, metadata_server, request):
    """v3's release killed at ``request.param``: the record left, production still v1."""
    fake, endpoint = served["vertex"], served["deployment"].endpoint
    initial = _endpoint_state(fake, endpoint)
    killed = _release(served, request.param, _vertex_deploy(fake))
    assert killed.returncode == -9, killed.stderr
    record = read_pending_release(served["registry"], MODEL)
    assert record is not None and record.interrupted()
    assert (record.version, record.run_id, record.endpoint) == (3, RUN_ID, endpoint)
    assert record.traffic_split_before == initial[1]  # what undoing it restores
    assert read_aliases(served["registry"], MODEL) == {"production": 1}
    return {**served, "initial": initial, "instant": request.param, "record": record}


def _warning_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if "was interrupted" in line]


@pytest.mark.slow
@pytest.mark.parametrize("interrupted", RECORD_INSTANTS, indirect=True)
@pytest.mark.parametrize(
    "command",
    [
        ("models", "list"),
        ("models", "list", "--json"),
        ("models", "show", MODEL),
        ("models", "show", MODEL, "--json"),
        ("models", "show", f"{MODEL}@v1"),
        ("models", "show", f"{MODEL}@production"),
    ],
)
def test_an_interrupted_release_is_shown_in_one_line(interrupted, command):
    registry = interrupted["registry"]
    before = tree(registry)
    result = invoke(*command, "--registry-dir", registry)
    assert result.exit_code == 0 and "Traceback" not in result.output, result.output
    (line,) = _warning_lines(result.output)
    assert line == (
        f"adaptune: warning: {MODEL}: release of v3 to endpoint {interrupted['record'].endpoint} "
        f"was interrupted (run {RUN_ID}): `adaptune run --resume {RUN_ID}` completes it (the "
        "next release of the model undoes it unless it is production)"
    )
    if "--json" in command and "list" in command:
        (row,) = json.loads(result.stdout)
        assert row["interrupted_release"]["version"] == 3
    assert tree(registry) == before


@pytest.mark.slow
@pytest.mark.parametrize("interrupted", RECORD_INSTANTS[1:], indirect=True)
@pytest.mark.parametrize(
    "command",
    [
        ("promote", f"{MODEL}@v2"),
        ("models", "promote", f"{MODEL}@v1"),
        ("rollback", MODEL),
        ("models", "rollback", MODEL),
    ],
)
def test_alias_moves_are_refused_while_a_release_is_interrupted(interrupted, command):
    registry = interrupted["registry"]
    before = tree(registry)
    line = one_line_error(invoke(*command, "--registry-dir", registry))
    assert "refused: the release of router@v3" in line and f"--resume {RUN_ID}" in line
    assert tree(registry) == before  # no alias moved, the record stays


@pytest.mark.slow
@pytest.mark.parametrize("interrupted", RECORD_INSTANTS[1:], indirect=True)
def test_promoting_the_interrupted_version_completes_its_release(interrupted):
    registry, fake = interrupted["registry"], interrupted["vertex"]
    result = invoke("promote", f"{MODEL}@v3", "--registry-dir", registry)
    assert result.exit_code == 0, result.output
    assert read_aliases(registry, MODEL) == {"production": 3, "previous": 1}
    assert not _record_path(registry).exists()
    assert _v3_names(fake, interrupted["record"].endpoint) == [f"{MODEL}-v3"]  # both sides
    listed = invoke("models", "list", "--registry-dir", registry)
    assert not _warning_lines(listed.output)


@pytest.mark.slow
@pytest.mark.parametrize("interrupted", RECORD_INSTANTS[1:2], indirect=True)
def test_force_moves_the_alias_and_the_next_release_settles_the_deployment(interrupted):
    registry = interrupted["registry"]
    result = invoke("promote", f"{MODEL}@v2", "--force", "--registry-dir", registry)
    assert result.exit_code == 0, result.output
    assert read_aliases(registry, MODEL)["production"] == 2
    assert _record_path(registry).exists()  # still unsettled: v3 serves on the endpoint
    _next_release_settles(interrupted, production_before=2)


def _next_release_settles(interrupted, production_before: int, v3_serves: bool = False) -> None:
    """A new run releases v4: it first undoes v3 (unless production), then deploys, promotes."""
    registry, fake = interrupted["registry"], interrupted["vertex"]
    endpoint = interrupted["record"].endpoint
    adapter = _write_adapter(interrupted["outside"] / "four", b"4")
    vertex_deploy = _vertex_deploy(fake)
    done = _release(
        {**interrupted, "adapter": adapter},
        None,
        vertex_deploy,
        run_id="adaptune-20260201-040000-next",
        evaluated_against=production_before,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["promoted"] is True
    assert read_aliases(registry, MODEL)["production"] == 4
    models, split = _endpoint_state(fake, endpoint)
    names = [name for _, name in models]
    assert (f"{MODEL}-v3" in names) is v3_serves and names.count(f"{MODEL}-v4") == 1
    assert sum(split.values()) == 100
    assert not _record_path(registry).exists()
    assert verify_version(resolve_version(registry, MODEL, "v3")) == ""  # registered, kept


@pytest.mark.slow
@pytest.mark.parametrize("interrupted", RECORD_INSTANTS, indirect=True)
def test_the_next_release_of_the_model_undoes_an_interrupted_one(interrupted):
    _next_release_settles(interrupted, production_before=1)


@pytest.mark.slow
@pytest.mark.parametrize("interrupted", RECORD_INSTANTS[1:2], indirect=True)
def test_a_kill_while_settling_leaves_the_record_for_the_release_after(interrupted):
    registry, fake = interrupted["registry"], interrupted["vertex"]
    adapter = _write_adapter(interrupted["outside"] / "four", b"4")
    killed = _release(
        {**interrupted, "adapter": adapter},
        "release:before-settle",
        _vertex_deploy(fake),
        run_id="adaptune-20260201-040000-next",
    )
    assert killed.returncode == -9, killed.stderr
    record = read_pending_release(registry, MODEL)
    assert record is not None and record.version == 3  # not replaced: still to settle
    assert read_aliases(registry, MODEL)["production"] == 1
    _next_release_settles({**interrupted, "outside": interrupted["outside"] / "again"}, 1)


@pytest.mark.slow
def test_a_record_left_after_the_promotion_is_complete_and_only_removed(served, metadata_server):
    fake = served["vertex"]
    killed = _release(served, "release:after-promote", _vertex_deploy(fake))
    assert killed.returncode == -9, killed.stderr
    assert read_aliases(served["registry"], MODEL)["production"] == 3
    assert _record_path(served["registry"]).exists()
    rolled = invoke("rollback", MODEL, "--registry-dir", served["registry"])
    assert "refused" in one_line_error(rolled)
    record = read_pending_release(served["registry"], MODEL)
    _next_release_settles({**served, "record": record}, 3, v3_serves=True)


def _live_record(registry: Path, endpoint: str) -> PendingRelease:
    """A record of a release under way in this very process (its pid is alive)."""
    return write_pending_release(
        registry,
        PendingRelease(
            model=MODEL,
            version=2,
            run_id="adaptune-20260201-050000-live",
            endpoint=endpoint,
            vertex_model="projects/p/locations/l/models/9",
            vertex_version_id="1",
        ),
    )


@pytest.mark.slow
def test_a_release_under_way_is_not_settled_by_another(served, metadata_server):
    fake, endpoint = served["vertex"], served["deployment"].endpoint
    _live_record(served["registry"], endpoint)
    listed = invoke("models", "list", "--registry-dir", served["registry"])
    assert listed.exit_code == 0 and not _warning_lines(listed.output)
    initial = _endpoint_state(fake, endpoint)
    done = _release(served, None, _vertex_deploy(fake))
    assert done.returncode == 1
    assert "another release of router is under way (router@v2" in done.stderr
    assert _endpoint_state(fake, endpoint) == initial  # nothing deployed, nothing undone
    assert read_aliases(served["registry"], MODEL) == {"production": 1}
    assert read_pending_release(served["registry"], MODEL).version == 2


@pytest.mark.slow
def test_a_failed_deploy_leaves_no_record(served, metadata_server):
    fake, endpoint = served["vertex"], served["deployment"].endpoint
    fake.fail("POST", ":deployModel", 500, "the deploy broke")
    initial = _endpoint_state(fake, endpoint)
    done = _release(served, None, _vertex_deploy(fake))
    assert done.returncode == 1 and "the deploy broke" in done.stderr
    assert _endpoint_state(fake, endpoint) == initial
    assert not _record_path(served["registry"]).exists()
    listed = invoke("models", "list", "--registry-dir", served["registry"])
    assert not _warning_lines(listed.output)


BROKEN_RECORDS = [
    b"{not json",
    b"[1, 2]",
    b'"a string"',
    b"null",
    b'{"model": "router"}',
    b'{"model": "router", "version": "3", "run_id": "r", "endpoint": "e", '
    b'"vertex_model": "m", "vertex_version_id": "1"}',
    b'{"model": "router", "version": 3, "run_id": "r", "endpoint": "e", '
    b'"vertex_model": "m", "vertex_version_id": "1", "unknown": 1}',
    b"\xff\xfe\x00garbage",
    b"",
]


@pytest.mark.parametrize("content", BROKEN_RECORDS)
@pytest.mark.parametrize(
    ("command", "code"),
    [
        (("models", "list"), 0),
        (("models", "show", MODEL), 0),
        (("promote", f"{MODEL}@v2"), 2),
        (("rollback", MODEL), 2),
    ],
)
def test_an_unreadable_record_is_reported_with_its_path(world, content, command, code):
    registry = world["registry"]
    _record_path(registry).write_bytes(content)
    before = tree(registry)
    result = invoke(*command, "--registry-dir", registry)
    assert "Traceback" not in result.output, result.output
    if code == 2:
        assert "is not a pending-release record" in one_line_error(result)
    else:
        assert result.exit_code == 0, result.output
        lines = [line for line in result.output.splitlines() if PENDING_RELEASE_FILE in line]
        assert len(lines) == 1 and "is not a pending-release record" in lines[0]
    assert tree(registry) == before


# -- the whole DAG, through the command line --------------------------------------------------


def _endpoint(fake) -> dict:
    (endpoint,) = [r for name, r in fake.resources.items() if "/endpoints/" in name]
    return endpoint


def _serving(fake) -> dict[str, int]:
    """Deployed display name → traffic share, on the model's endpoint."""
    endpoint = _endpoint(fake)
    split = {k: int(v) for k, v in (endpoint.get("trafficSplit") or {}).items()}
    return {d["displayName"]: split.get(d["id"], 0) for d in endpoint.get("deployedModels", [])}


def _only_run(runs: Path) -> str:
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    return run_dir.name


def _assert_released(registry: Path, runs: Path, fake, version: int, run_id: str) -> None:
    """Both sides: production on the version, the endpoint serving it alone, lineage durable."""
    assert read_aliases(registry, MODEL)["production"] == version
    assert _serving(fake) == {f"{MODEL}-v{version}": 100}
    assert not _record_path(registry).exists()
    shown = invoke(
        "lineage", f"{MODEL}@production", "--registry-dir", registry, "--runs-dir", runs, "--json"
    )
    assert shown.exit_code == 0, shown.output
    chain = json.loads(shown.output)
    assert (chain["properties"]["model"], chain["properties"]["version"]) == (MODEL, version)
    assert (
        json.loads((registry / MODEL / f"v{version}" / "lineage.json").read_text())["run_id"]
        == run_id
    )
    listed = invoke("models", "list", "--registry-dir", registry)
    assert listed.exit_code == 0 and not _warning_lines(listed.output)


@pytest.mark.pipeline
@pytest.mark.slow
def test_a_run_whose_deploy_task_dies_after_the_deploy_ends_with_neither_then_resumes(
    cloud, metadata_server, tmp_path, monkeypatch
):
    fake = cloud["vertex"]
    config, registry = vertex_run_config(tmp_path, fake)
    runs = tmp_path / "runs"
    monkeypatch.setenv("ADAPTUNE_KILL_AT", "release:after-deploy")  # the task dies, not the run
    failed = invoke("run", "--config", config, "--runs-dir", runs, "--compiled", COMPILED)
    assert failed.exit_code == 1, failed.output
    assert "Traceback" not in failed.output and "deploy-to-vertex" in failed.output
    # The runner settled its own interrupted release: neither side moved.
    assert "release: the interrupted release of router@v1" in failed.output
    assert "was undone" in failed.output
    assert read_aliases(registry, MODEL) == {}
    assert _serving(fake) == {}
    assert not _record_path(registry).exists()
    run_id = _only_run(runs)
    manifest = json.loads((runs / run_id / "manifest.json").read_text())
    assert manifest["status"] == "failed" and "was undone" in manifest["release_settled"]

    monkeypatch.delenv("ADAPTUNE_KILL_AT")
    resumed = invoke("run", "--runs-dir", runs, "--resume", run_id)
    assert resumed.exit_code == 0, resumed.output
    _assert_released(registry, runs, fake, 1, run_id)


def _group_states(pgid: int) -> list[str]:
    """The states (``/proc/PID/stat``) of the processes of a process group."""
    states = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:
            states.append(fields[0])
    return states


def _stopped_in_group(pgid: int) -> bool:
    """Whether a process of the group stopped itself (``ADAPTUNE_STOP_AT``)."""
    return "T" in _group_states(pgid)


def _kill_run_at_the_instant(config: Path, runs: Path, registry: Path, fake) -> str:
    """``adaptune run`` in its own process group, kill -9 of the group once v1 is deployed
    (its task stopped right after the deploy) and production has not moved."""
    environment = {**os.environ, "ADAPTUNE_STOP_AT": "release:after-deploy"}
    environment.pop("ADAPTUNE_KILL_AT", None)
    environment["PYTHONPATH"] = os.pathsep.join([str(REPO), environment.get("PYTHONPATH", "")])
    process = subprocess.Popen(
        [sys.executable, "-m", "adaptune", "run", "--config", str(config), "--runs-dir",
         str(runs), "--compiled", str(COMPILED)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=environment,
        cwd=REPO,
        start_new_session=True,
    )  # fmt: skip
    deadline = time.monotonic() + 600
    try:
        while not (
            _stopped_in_group(process.pid)
            and _record_path(registry).exists()
            and any(
                r.get("deployedModels") for n, r in fake.resources.items() if "/endpoints/" in n
            )
        ):
            assert process.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert read_aliases(registry, MODEL) == {}  # deployed, not promoted: the instant
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    while any(state not in "ZX" for state in _group_states(process.pid)):  # SIGKILL lands
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return _only_run(runs)


@pytest.mark.pipeline
@pytest.mark.slow
@pytest.mark.parametrize("recovery", ["resume", "new run"])
def test_a_run_killed_whole_between_deploy_and_promotion_recovers_consistently(
    cloud, metadata_server, tmp_path, recovery
):
    fake = cloud["vertex"]
    config, registry = vertex_run_config(tmp_path, fake)
    runs = tmp_path / "runs"
    run_id = _kill_run_at_the_instant(config, runs, registry, fake)
    assert _serving(fake) == {f"{MODEL}-v1": 100}  # the in-between state: endpoint yes, local no
    listed = invoke("models", "list", "--registry-dir", registry)
    assert listed.exit_code == 0
    assert _warning_lines(listed.output) == [
        f"adaptune: warning: {MODEL}: release of v1 to endpoint {_endpoint(fake)['name']} was "
        f"interrupted (run {run_id}): `adaptune run --resume {run_id}` completes it (the next "
        "release of the model undoes it unless it is production)"
    ]
    before = tree(registry)
    assert "refused" in one_line_error(invoke("rollback", MODEL, "--registry-dir", registry))
    assert tree(registry) == before

    if recovery == "resume":
        resumed = invoke("run", "--runs-dir", runs, "--resume", run_id)
        assert resumed.exit_code == 0, resumed.output
        _assert_released(registry, runs, fake, 1, run_id)
        return
    again = invoke("run", "--config", config, "--runs-dir", runs, "--compiled", COMPILED)
    assert again.exit_code == 0, again.output
    (new_id,) = [p.name for p in runs.iterdir() if p.is_dir() and p.name != run_id]
    # v1's deployment was undone (it never became production); v2 is released on both sides.
    _assert_released(registry, runs, fake, 2, new_id)
    assert verify_version(resolve_version(registry, MODEL, "v1")) == ""
    assert json.loads((registry / MODEL / "v1" / "version.json").read_text())["run_id"] == run_id
