"""The studio's Models and Lineage pages through HTTP, against a registry the tests build."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from html import unescape
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import COMPILED, SAMPLE
from fastapi.testclient import TestClient
from sample_adapters import save_random_lora
from test_cli import captured_run  # noqa: F401  (fixture)

from adaptune.cli import main
from adaptune.lineage.store import MetadataStore
from adaptune.registry import read_aliases, register_version
from adaptune.registry.pending_release import PendingRelease, pending_release_path
from adaptune.studio.app import create_app
from adaptune.studio.settings import StudioSettings

BASE = "builtin:tiny-gpt2"
SCRIPT = "<script>alert(1)</script>"
METRICS = {"tuned_exact_match": 0.75, "base_exact_match": 0.125}


@pytest.fixture(scope="module")
def loras(tmp_path_factory):
    root = tmp_path_factory.mktemp("studio-loras")
    return [save_random_lora(BASE, root / f"seed{seed}", seed=seed) for seed in (1, 2, 3)]


@pytest.fixture
def registry(tmp_path, loras):
    """alpha: v1 (production), v2 (not promoted, a hostile description); beta: v1."""
    reg = tmp_path / "registry"
    meta = {"base_model": BASE, "metrics": METRICS, "data_sha256": "d" * 64}
    register_version(reg, "alpha", loras[0], {**meta, "run_id": "run-a1"}, promote=True)
    register_version(reg, "alpha", loras[1], {**meta, "run_id": "run-a2", "description": SCRIPT})
    register_version(reg, "beta", loras[2], {**meta, "run_id": "run-b1"}, promote=True)
    return reg


def studio(tmp_path: Path, registry: Path) -> TestClient:
    settings = StudioSettings(
        runs_dir=tmp_path / "runs", registry_dir=registry, compiled=COMPILED, csrf_token="t0k"
    )
    return TestClient(create_app(settings), follow_redirects=False)


def cli(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


def shown_aliases(registry: Path, model: str) -> dict:
    result = cli("models", "show", model, "--registry-dir", registry, "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["aliases"]


def labelled(page: str, label: str) -> bool:
    """Whether ``page`` has a <label for=X>label</label> and a control with id X."""
    match = re.search(rf'<label for="([^"]+)">{re.escape(label)}</label>', page)
    return bool(match) and f'id="{match.group(1)}"' in page


def test_models_list_and_model_page_render(tmp_path, registry):
    with studio(tmp_path, registry) as client:
        listing = client.get("/models")
        page = client.get("/models/alpha")
    assert listing.status_code == 200
    assert '<table id="models">' in listing.text
    assert '<a href="/models/alpha">alpha</a>' in listing.text
    assert '<a href="/models/beta">beta</a>' in listing.text
    assert page.status_code == 200
    rows = dict(re.findall(r'<tr data-version="(\d+)">(.*?)</tr>', page.text, re.S))
    assert set(rows) == {"1", "2"}
    aliases = dict(
        re.findall(r'data-version="(\d+)">.*?<td class="aliases">(.*?)</td>', page.text, re.S)
    )
    assert aliases == {"1": "production", "2": ""}
    assert "tuned_exact_match" in rows["1"] and "0.7500" in rows["1"]
    assert '<a href="/runs/run-a1">run-a1</a>' in rows["1"]
    assert BASE in rows["1"] and "lora" in rows["1"]
    assert 'href="/lineage?ref=alpha%40v2"' in rows["2"]
    assert "Promote v2" in rows["2"] and "Promote v1" not in rows["1"]
    assert page.text.count("data-confirm=") == 2  # promote v2 and roll back
    assert "Roll back" in page.text
    assert labelled(page.text, "Version A") and labelled(page.text, "Version B")


def test_a_description_is_escaped_never_raw(tmp_path, registry):
    with studio(tmp_path, registry) as client:
        page = client.get("/models/alpha")
        compared = client.get("/models/alpha/compare?a=1&b=2")
    for text in (page.text, compared.text):
        assert SCRIPT not in text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    shown = cli("models", "show", "alpha", "--registry-dir", registry)
    assert shown.exit_code == 0 and SCRIPT in " ".join(shown.stdout.split()).replace(" ", "")


def test_compare_shows_both_versions(tmp_path, registry):
    with studio(tmp_path, registry) as client:
        page = client.get("/models/alpha/compare", params={"a": "1", "b": "v2"})
        missing = client.get("/models/alpha/compare?a=1&b=9")
    assert page.status_code == 200
    assert "alpha@v1" in page.text and "alpha@v2" in page.text
    assert '<a href="/runs/run-a1">' in page.text and '<a href="/runs/run-a2">' in page.text
    (metric,) = re.findall(r'<tr data-metric="tuned_exact_match">(.*?)</tr>', page.text, re.S)
    assert metric.count("0.7500") == 2
    assert missing.status_code == 404 and "no version v9" in missing.text


def test_promote_and_rollback_move_the_aliases_as_the_cli_would(tmp_path, registry):
    with studio(tmp_path, registry) as client:
        done = client.post("/models/alpha/promote", data={"version": "2", "csrf_token": "t0k"})
        assert done.status_code == 303
        assert shown_aliases(registry, "alpha") == {"production": 2, "previous": 1}
        page = client.get(done.headers["location"])
        assert re.search(r'role="status"[^>]*>alpha: production → v2, previous → v1<', page.text)
        rows = dict(re.findall(r'<tr data-version="(\d+)">(.*?)</tr>', page.text, re.S))
        assert "production" in rows["2"] and "Promote v1" in rows["1"]
        back = client.post("/models/alpha/rollback", data={"csrf_token": "t0k"})
        assert back.status_code == 303
        assert read_aliases(registry, "alpha") == {"production": 1, "previous": 2}
        assert "alpha: production → v1, previous → v2" in client.get(back.headers["location"]).text
    # the CLI does the same from the same state: rollback again returns to v2
    assert cli("rollback", "alpha", "--registry-dir", registry).exit_code == 0
    assert shown_aliases(registry, "alpha") == {"production": 2, "previous": 1}


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(tmp_path, registry):
    before = (registry / "alpha" / "index.json").read_bytes()
    with studio(tmp_path, registry) as client:
        for path, data in (
            ("/models/alpha/promote", {"version": "2"}),
            ("/models/alpha/rollback", {}),
            ("/models/alpha/promote", {"version": "2", "csrf_token": "wrong"}),
        ):
            assert client.post(path, data=data).status_code == 403
    assert (registry / "alpha" / "index.json").read_bytes() == before


@pytest.mark.parametrize(
    "path",
    ["/models/gamma", "/models/..%2f..%2fetc", "/models/ALPHA", "/models/gamma/compare?a=1&b=1"],
)
def test_an_unknown_or_malformed_model_is_404(tmp_path, registry, path):
    with studio(tmp_path, registry) as client:
        assert client.get(path, headers={"accept": "text/html"}).status_code == 404
        assert client.post("/models/gamma/rollback", data={"csrf_token": "t0k"}).status_code == 404
    assert not (registry / "gamma").exists()


def test_a_refused_promote_and_rollback_show_the_reason(tmp_path, registry):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    record = PendingRelease(  # the release of v1 (production) was interrupted
        "alpha",
        1,
        "run-a1",
        "projects/p/locations/l/endpoints/1",
        "projects/p/locations/l/models/1",
        "1",
        pid=dead.pid,
        host=socket.gethostname(),
        started_at="2024-01-01T00:00:00+00:00",
    )
    pending_release_path(registry, "alpha").write_text(json.dumps(record.__dict__))
    with studio(tmp_path, registry) as client:
        promoting = client.post("/models/alpha/promote", data={"version": "2", "csrf_token": "t0k"})
        promote_page = client.get(promoting.headers["location"])
        refused = client.post("/models/alpha/rollback", data={"csrf_token": "t0k"})
        page = client.get(refused.headers["location"])
        no_previous = client.post("/models/beta/rollback", data={"csrf_token": "t0k"})
        beta = client.get(no_previous.headers["location"])
    alert = re.search(r'role="alert"[^>]*>(.*?)</p>', page.text, re.S)
    assert alert and "rollback refused" in unescape(alert.group(1))
    assert "was interrupted" in unescape(alert.group(1)) and "--force" in unescape(alert.group(1))
    assert "interrupted" in page.text  # the warning models list gives
    promote_alert = re.search(r'role="alert"[^>]*>(.*?)</p>', promote_page.text, re.S)
    assert promote_alert and "promote refused" in unescape(promote_alert.group(1))
    assert 'role="status"' not in promote_page.text
    assert read_aliases(registry, "alpha") == {"production": 1}
    assert "beta has no previous version to roll back to" in unescape(beta.text)
    cli_refusal = cli("rollback", "alpha", "--registry-dir", registry)
    assert cli_refusal.exit_code == 2 and "rollback refused" in cli_refusal.output
    cli_promote = cli("promote", "alpha@v2", "--registry-dir", registry)
    assert cli_promote.exit_code == 2 and unescape(promote_alert.group(1)) in " ".join(
        cli_promote.output.split()
    )


def test_a_corrupt_version_is_listed_with_its_reason(tmp_path, registry):
    meta = registry / "beta" / "v1" / "version.json"
    meta.chmod(0o644)
    meta.write_text("{not json")
    with studio(tmp_path, registry) as client:
        listing = client.get("/models")
        page = client.get("/models/beta")
    cli_list = cli("models", "list", "--registry-dir", registry, "--json")
    (problem,) = next(r for r in json.loads(cli_list.stdout) if r["model"] == "beta")["problems"]
    for response in (listing, page):
        assert response.status_code == 200
        assert unescape(problem) in unescape(response.text)
        assert "Traceback" not in response.text


def _record_run(runs: Path, registry: Path, data: Path) -> str:
    """A run's records as the runner writes them: data file → tasks → registered version."""
    from adaptune.hashing import sha256_file

    version_dir = registry / "alpha" / "v1"
    store = MetadataStore(runs)
    try:
        store.start_run("run-a1", {"model_name": "alpha"})
        digest = sha256_file(data)
        file_id = store.put_artifact("data_file", str(data), digest, {"parameter": "train_data"})
        dataset = store.put_artifact("dataset", "/runs/run-a1/dataset", "e" * 64, {})
        adapter = store.put_artifact("adapter", "/runs/run-a1/adapter", "f" * 64, {})
        version = store.put_artifact(
            "registry_version", str(version_dir), "a" * 64, {"model": "alpha", "version": 1}
        )
        for task, inputs, outputs in (
            ("validate-dataset", {"train_data": file_id}, {"dataset": dataset}),
            ("tune-adapter", {"dataset": dataset}, {"trained_adapter": adapter}),
            ("register-version", {"trained_adapter": adapter}, {"version": version}),
        ):
            store.put_execution("run-a1", task, {}, "success", None, None, None, inputs, outputs)
        store.finish_run("run-a1", "succeeded")
    finally:
        store.close()
    return digest


def test_lineage_draws_the_recorded_chain_down_to_the_data_file(tmp_path, registry):
    data = tmp_path / "train.jsonl"
    data.write_text((SAMPLE / "train.jsonl").read_text()[:2000])
    digest = _record_run(tmp_path / "runs", registry, data)
    with studio(tmp_path, registry) as client:
        form = client.get("/lineage")
        page = client.get("/lineage", params={"ref": "alpha@v1"})
    assert labelled(form.text, "Version") and ">Show</button>" in form.text
    assert (
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Lineage of alpha@v1"'
        in (page.text)
    )
    svg = page.text[page.text.index("<svg") : page.text.index("</svg>")]
    assert f"sha256 {digest[:12]}" in svg and digest in svg
    assert str(data)[-20:] in svg
    assert '<a href="/runs/run-a1">' in svg and '<a href="/models/alpha">' in svg
    for task in ("validate-dataset", "tune-adapter", "register-version"):
        assert f">{task}<" in svg
    cli_json = cli(
        "lineage", "alpha@v1", "--runs-dir", tmp_path / "runs", "--registry-dir", registry, "--json"
    )
    assert digest in cli_json.stdout


def test_lineage_falls_back_to_the_version_record_and_refuses_unknown_refs(tmp_path, registry):
    with studio(tmp_path, registry) as client:
        page = client.get("/lineage", params={"ref": "alpha@v2"})
        unknown = client.get("/lineage", params={"ref": "gamma@v1"})
        bad = client.get("/lineage", params={"ref": SCRIPT})
    assert 'aria-label="Lineage of alpha@v2"' in page.text
    assert "sha256 dddddddddddd" in page.text  # the validated data the version recorded
    assert '<a href="/runs/run-a2">' in page.text and "lineage.json" in page.text
    assert 'role="alert"' in unknown.text and "gamma" in unknown.text
    assert 'role="alert"' in bad.text and SCRIPT not in bad.text and "&lt;script&gt;" in bad.text


@pytest.mark.pipeline
def test_a_run_description_is_stored_with_the_version_and_shown(tmp_path):
    train, evaluation = tmp_path / "train.jsonl", tmp_path / "eval.jsonl"
    train.write_text("".join((SAMPLE / "train.jsonl").read_text().splitlines(True)[:160]))
    evaluation.write_text("".join((SAMPLE / "eval.jsonl").read_text().splitlines(True)[:24]))
    registry, runs = tmp_path / "registry", tmp_path / "runs"
    description = f"support router, {SCRIPT}"
    result = cli(
        "run",
        "--train-data",
        train,
        "--eval-data",
        evaluation,
        "--runs-dir",
        runs,
        "--registry-dir",
        registry,
        "--train-steps",
        "30",
        "--threshold",
        "0",
        "--min-improvement",
        "0",
        "--tolerance",
        "1",
        "--model-name",
        "router",
        "--description",
        description,
    )
    assert result.exit_code == 0, result.output
    shown = cli("models", "show", "router@v1", "--registry-dir", registry)
    assert json.loads(shown.stdout)["description"] == description
    lineage_record = json.loads((registry / "router" / "v1" / "lineage.json").read_text())
    assert lineage_record["params"]["description"] == description
    with studio(tmp_path, registry) as client:
        page = client.get("/models/router")
        graph = client.get("/lineage", params={"ref": "router@v1"})
    assert "support router, &lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert SCRIPT not in page.text
    from adaptune.hashing import sha256_file

    assert sha256_file(train)[:12] in graph.text and sha256_file(evaluation)[:12] in graph.text
    assert os.path.basename(train) in graph.text


def test_the_description_flag_is_a_checked_pipeline_parameter(captured_run, tmp_path):  # noqa: F811
    train = str(SAMPLE / "train.jsonl")
    ok = cli("run", "--train-data", train, "--runs-dir", tmp_path, "--description", "v2 of it")
    assert ok.exit_code == 0, ok.output
    assert captured_run[0]["params"]["description"] == "v2 of it"
    default = cli("run", "--train-data", train, "--runs-dir", tmp_path)
    assert default.exit_code == 0 and captured_run[1]["params"]["description"] == ""
    for bad, why in (("x" * 2001, "at most 2000 characters"), ("a\x00b", "NUL")):
        refused = cli("run", "--train-data", train, "--runs-dir", tmp_path, "--description", bad)
        assert refused.exit_code == 2 and why in refused.output, refused.output
        assert "Traceback" not in refused.output
    assert len(captured_run) == 2
