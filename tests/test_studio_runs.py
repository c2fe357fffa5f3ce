"""The studio's New tuning job form, job queue, Runs and run pages, through HTTP (TestClient)."""

from __future__ import annotations

import json
import os
import re
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from conftest import COMPILED, SAMPLE, write_jsonl
from fastapi.testclient import TestClient

from adaptune.lineage.store import MetadataStore
from adaptune.pids import pid_alive
from adaptune.runner.params import pipeline_params
from adaptune.studio import security, uploads
from adaptune.studio.app import create_app
from adaptune.studio.jobs import JOBS_SUBDIR, JobQueue, adaptune_run
from adaptune.studio.settings import StudioSettings

CONTRACT_LABELS = (
    "Model name",
    "Training data",
    "Eval data",
    "Or upload training data",
    "Base model",
    "Method",
    "Training steps",
    "Learning rate",
)
RUN_ID = "adaptune-20250101-000000-abcdef"


def sleeper(settings: StudioSettings, run_id: str, config: Path) -> list[str]:
    """A slow stand-in for ``adaptune run``: it starts a grandchild, writes both pids, sleeps."""
    script = (
        "import os, subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        "open(sys.argv[2], 'w').write(f'{os.getpid()} {child.pid}')\n"
        "time.sleep(120)\n"
    )
    return [sys.executable, "-c", script, run_id, str(config.with_name("pids.txt"))]


class Studio:
    """An app on tmp_path's directories, its client, and its queue."""

    def __init__(self, tmp_path: Path, command=sleeper):
        self.settings = StudioSettings(
            runs_dir=tmp_path / "runs", registry_dir=tmp_path / "registry", compiled=COMPILED
        )
        self.app = create_app(self.settings)
        self.queue = JobQueue(self.settings, command)
        self.app.state.jobs = self.queue
        self.client = TestClient(self.app)
        self.token = self.settings.csrf_token

    def post(self, url: str, data: dict | None = None, **kwargs):
        return self.client.post(
            url, data={"csrf_token": self.token, **(data or {})}, follow_redirects=False, **kwargs
        )

    def start(self, **fields) -> str:
        reply = self.post("/jobs/new", job_fields(action="start", **fields))
        assert reply.status_code == 303, reply.text
        location = reply.headers["location"]
        assert location.startswith("/runs/adaptune-")
        return location.removeprefix("/runs/")

    def stop_all(self) -> None:
        for job in self.queue.jobs():
            if job.state in ("queued", "running"):
                self.queue.cancel(job.id)


@pytest.fixture
def studio(tmp_path):
    made = Studio(tmp_path)
    yield made
    made.stop_all()


def job_fields(**overrides) -> dict[str, str]:
    return {
        "model_name": "router",
        "train_data": str(SAMPLE / "train.jsonl"),
        "eval_data": str(SAMPLE / "eval.jsonl"),
        "base_model": "builtin:tiny-gpt2",
        "method": "lora",
        "train_steps": "20",
        "learning_rate": "0.003",
        "lora_r": "8",
        "threshold": "0.3",
        "action": "check",
    } | overrides


class Controls(HTMLParser):
    """Form controls, labels (for= and text), alerts and buttons of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.controls: list[dict[str, str]] = []
        self.labels: dict[str, str] = {}
        self.buttons: list[str] = []
        self.alerts = 0
        self._label: str | None = None
        self._button = False

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if a.get("role") == "alert":
            self.alerts += 1
        if tag in ("input", "select", "textarea") and a.get("type") != "hidden":
            self.controls.append(a)
        if tag == "label":
            self._label = a.get("for", "")
            self.labels[self._label] = ""
        if tag == "button":
            self._button = True
            self.buttons.append("")

    def handle_endtag(self, tag):
        if tag == "label":
            self._label = None
        if tag == "button":
            self._button = False

    def handle_data(self, data):
        if self._label is not None:
            self.labels[self._label] += data
        if self._button:
            self.buttons[-1] += data.strip()


def parsed(html: str) -> Controls:
    page = Controls()
    page.feed(html)
    return page


def wait_for(check, timeout: float = 20.0, every: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s")


def jobs_dir(studio: Studio) -> Path:
    return studio.settings.runs_dir / JOBS_SUBDIR


def job_pids(studio: Studio, run_id: str) -> tuple[int, int]:
    path = jobs_dir(studio) / run_id / "pids.txt"
    text = wait_for(lambda: path.is_file() and path.read_text())
    first, second = text.split()
    return int(first), int(second)


# --- the form ---------------------------------------------------------------------------------


def test_the_form_labels_every_control_and_offers_check_and_start(studio):
    reply = studio.client.get("/jobs/new")
    assert reply.status_code == 200
    page = parsed(reply.text)
    for control in page.controls:
        assert control.get("id") in page.labels or control.get("aria-label"), control
        assert control.get("tabindex") != "-1"
    labels = {" ".join(text.split()) for text in page.labels.values()}
    assert set(CONTRACT_LABELS) <= labels
    assert page.buttons == ["Check data", "Start"]
    assert page.alerts == 0
    # The compiled defaults fill it in.
    assert 'value="300"' in reply.text and 'value="builtin:tiny-gpt2"' in reply.text


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("train_steps", "-5", "steps"),
        ("learning_rate", "fast", "Learning rate: expected a number"),
        ("train_data", "/nonexistent/train.jsonl", "no such file"),
        ("model_name", "Bad Name!", "model"),
        ("method", "magic", "Method"),
    ],
)
def test_a_bad_setting_is_one_alert_line_and_starts_nothing(studio, field, value, says):
    reply = studio.post("/jobs/new", job_fields(action="start", **{field: value}))
    assert reply.status_code == 400
    page = parsed(reply.text)
    assert page.alerts == 1
    alert = re.search(r'role="alert">(.*?)</p>', reply.text, re.S).group(1)
    assert says.lower() in alert.lower() and "\n" not in alert.strip()
    if field != "method":
        assert f'value="{value}"' in reply.text  # the values are kept
    assert studio.queue.jobs() == []
    assert not jobs_dir(studio).exists() or not any(
        p for p in jobs_dir(studio).iterdir() if not p.name.startswith(".")
    )


def test_check_data_shows_the_validation_report(studio):
    reply = studio.post("/jobs/new", job_fields(action="check"))
    assert reply.status_code == 200, reply.text
    assert '<h2 id="validation-report-heading">Validation report</h2>' in reply.text
    assert 'id="verdict">passed<' in reply.text
    assert "<td>400</td>" in reply.text and "<td>80</td>" in reply.text  # records per split
    assert parsed(reply.text).alerts == 0
    assert studio.queue.jobs() == []  # checking starts nothing


def test_check_data_shows_problems_escaped(studio, tmp_path):
    rows = [{"input_text": f"ticket {i}", "output_text": "sales"} for i in range(20)]
    rows.append({"input_text": "<script>alert(1)</script>", "output_text": ""})
    data = write_jsonl(tmp_path / "bad.jsonl", rows)
    reply = studio.post("/jobs/new", job_fields(train_data=str(data), eval_data=""))
    assert reply.status_code == 200
    assert 'id="verdict">failed<' in reply.text
    assert parsed(reply.text).alerts == 1  # "the data would fail validation"
    assert "empty" in reply.text.lower()
    assert "<script>alert(1)" not in reply.text


def test_an_upload_is_kept_by_its_sha256_and_used_as_training_data(studio):
    body = (SAMPLE / "train.jsonl").read_bytes()
    reply = studio.post(
        "/jobs/new",
        job_fields(train_data="", eval_data=str(SAMPLE / "eval.jsonl")),
        files={"upload": ("../my tickets.jsonl", body, "application/json")},
    )
    assert reply.status_code == 200, reply.text
    (saved,) = studio.settings.uploads_dir.glob("*/*")
    assert saved.name == "my_tickets.jsonl" and saved.read_bytes() == body
    import hashlib

    assert saved.parent.name == hashlib.sha256(body).hexdigest()
    assert f'value="{saved}"' in reply.text  # Start needs no second upload
    assert 'id="verdict">passed<' in reply.text


def test_an_upload_over_the_bound_is_refused(studio, monkeypatch):
    upload = {"upload": ("big.jsonl", b"x" * 5000, "application/json")}
    monkeypatch.setattr(uploads, "MAX_UPLOAD_BYTES", 1000)
    reply = studio.post("/jobs/new", job_fields(train_data=""), files=upload)
    assert reply.status_code == 400 and parsed(reply.text).alerts == 1
    assert "the uploaded file is over" in reply.text
    assert list(studio.settings.uploads_dir.glob("**/*")) == []  # nothing half-written stays
    # A body over the form's bound is refused by its length, before it is read.
    monkeypatch.setattr(security, "MAX_FORM_BYTES", 2000)
    assert studio.post("/jobs/new", job_fields(), files=upload).status_code == 413


# --- the queue --------------------------------------------------------------------------------


def test_start_queues_the_job_and_opens_its_run_page(studio):
    run_id = studio.start()
    job = studio.queue.get(run_id)
    assert job is not None and job.state == "running" and job.pid
    page = studio.client.get(f"/runs/{run_id}")
    assert page.status_code == 200
    assert '<span id="run-status" class="state state-running">running</span>' in page.text
    assert "Cancel run" in page.text and "data-confirm=" in page.text
    assert 'aria-label="Pipeline tasks"' in page.text
    # The job's config file gives adaptune run the parameters the form checked.
    config = jobs_dir(studio) / run_id / "config.yaml"
    written = yaml.safe_load(config.read_text())
    assert written["train_data"] == str(SAMPLE / "train.jsonl")
    assert written["training"] == {"steps": 20, "learning_rate": 0.003}
    assert written["adapter"] == {"method": "lora", "r": 8}
    params = pipeline_params(COMPILED, config, {"registry_dir": str(studio.settings.registry_dir)})
    assert params["model_name"] == "router" and params["gate"]["threshold"] == 0.3
    # What the real queue runs: adaptune run with that id, those directories and that config.
    argv = adaptune_run(studio.settings, run_id, config)
    assert argv[:4] == [sys.executable, "-m", "adaptune", "run"]
    assert argv[argv.index("--run-id") + 1] == run_id
    assert argv[argv.index("--config") + 1] == str(config)
    assert argv[argv.index("--registry-dir") + 1] == str(studio.settings.registry_dir)
    rows = studio.client.get("/runs.json").json()["runs"]
    assert [(r["run_id"], r["status"]) for r in rows] == [(run_id, "running")]


def test_a_second_job_waits_queued_and_a_queued_job_can_be_cancelled(studio):
    first = studio.start()
    second = studio.start(model_name="second")
    assert studio.queue.get(second).state == "queued"
    listing = studio.client.get("/runs")
    assert re.search(
        rf'href="/runs/{second}">{second}</a></td>\s*<td class="state state-queued">', listing.text
    )
    reply = studio.post(f"/runs/{second}/cancel")
    assert reply.status_code == 303 and reply.headers["location"] == f"/runs/{second}"
    job = studio.queue.get(second)
    assert job.state == "cancelled" and job.pid is None
    page = studio.client.get(f"/runs/{second}")
    assert 'id="run-status" class="state state-cancelled">cancelled<' in page.text
    assert studio.queue.get(first).state == "running"
    assert studio.post(f"/runs/{second}/cancel").status_code == 409  # already cancelled
    assert studio.post(f"/runs/{RUN_ID}/cancel").status_code == 404  # not a studio job


def test_cancelling_a_running_job_ends_its_process_group_and_the_next_starts(studio):
    first = studio.start()
    second = studio.start()
    leader, grandchild = job_pids(studio, first)
    assert pid_alive(leader) and pid_alive(grandchild)
    assert studio.post(f"/runs/{first}/cancel").status_code == 303
    wait_for(lambda: not pid_alive(leader) and not pid_alive(grandchild))
    assert studio.queue.get(first).state == "cancelled"
    wait_for(lambda: studio.queue.get(first).exit_code is not None)
    assert studio.queue.get(first).exit_code == -15  # SIGTERM
    wait_for(lambda: studio.queue.get(second).state == "running")
    rows = {r["run_id"]: r["status"] for r in studio.client.get("/runs.json").json()["runs"]}
    assert rows == {first: "cancelled", second: "running"}


def test_a_restarted_studio_keeps_its_queue(tmp_path):
    before = Studio(tmp_path)
    first = before.start()
    second = before.start()
    leader, _ = job_pids(before, first)
    after = Studio(tmp_path)  # another studio process on the same runs directory
    try:
        states = {j.id: j.state for j in after.queue.jobs()}
        assert states == {first: "running", second: "queued"}
        after.queue.advance()
        assert after.queue.get(second).state == "queued"  # the first one still runs
        listing = after.client.get("/runs.json").json()["runs"]
        assert {r["run_id"] for r in listing} == {first, second}
        after.queue.cancel(first)  # a process this studio did not start, found by its pid
        wait_for(lambda: not pid_alive(leader))
        wait_for(lambda: after.queue.get(second).state == "running", timeout=30)
    finally:
        after.stop_all()
        before.stop_all()


# --- security ---------------------------------------------------------------------------------


def test_posts_without_the_csrf_token_are_refused(studio):
    run_id = studio.start()
    fields = job_fields(action="start")
    assert studio.client.post("/jobs/new", data=fields).status_code == 403
    wrong = studio.client.post("/jobs/new", data=fields | {"csrf_token": "x"})
    assert wrong.status_code == 403
    assert studio.client.post(f"/runs/{run_id}/cancel").status_code == 403
    assert studio.queue.get(run_id).state == "running"
    assert len(studio.queue.jobs()) == 1


@pytest.mark.parametrize(
    "path",
    [
        "/runs/..%2Fx",
        "/runs/%2E%2E%2Fetc",
        "/runs/..x.json",
        "/runs/Adaptune-1",
        "/runs/-x/reports/validation",
        "/runs/..%2F..%2Fetc/reports/validation",
    ],
)
def test_a_bad_run_id_is_refused(studio, path):
    reply = studio.client.get(path)
    assert reply.status_code == 404
    assert studio.post("/runs/..%2Fx/cancel").status_code == 404


def fake_run(runs_dir: Path, run_id: str, report: Path | None = None) -> Path:
    """A run directory as the runner leaves it: a manifest and a finished validate-dataset."""
    run_dir = runs_dir / run_id
    task = run_dir / "pipeline" / "adapter-tuning-2025-01-01-00-00-00" / "validate-dataset"
    task.mkdir(parents=True)
    params = {"run_id": run_id, "train_data": "x.jsonl", "eval_data": "", "model_name": "m"}
    (run_dir / "manifest.json").write_text(json.dumps({"params": params, "status": "running"}))
    artifacts = {}
    if report is not None:
        artifacts["report"] = {"artifacts": [{"uri": str(report), "metadata": {}}]}
    output = {"artifacts": artifacts, "parameterValues": {"train_records": 3}}
    (task / "executor_output.json").write_text(json.dumps(output))
    return run_dir


def test_a_report_outside_the_run_directory_is_not_served(studio, tmp_path):
    secret = tmp_path / "secret.html"
    secret.write_text("<p>not the run's</p>")
    fake_run(studio.settings.runs_dir, RUN_ID, secret)
    assert studio.client.get(f"/runs/{RUN_ID}/reports/validation").status_code == 404
    page = studio.client.get(f"/runs/{RUN_ID}")
    assert page.status_code == 200 and "/reports/validation" not in page.text

    other = "adaptune-20250101-000000-aaaaaa"
    run_dir = studio.settings.runs_dir / other
    inside = run_dir / "pipeline" / "report.html"
    link = run_dir / "pipeline" / "link.html"
    fake_run(studio.settings.runs_dir, other, inside)
    inside.write_text("<h1>Data validation: PASSED</h1>")
    reply = studio.client.get(f"/runs/{other}/reports/validation")
    assert reply.status_code == 200 and "PASSED" in reply.text
    assert "sandbox" in reply.headers["content-security-policy"]
    assert studio.client.get(f"/runs/{other}/reports/passwords").status_code == 404
    inside.unlink()
    link.symlink_to(secret)  # a link inside the run pointing out of it
    fake_run_link = json.loads(
        next(run_dir.glob("pipeline/*/validate-dataset/executor_output.json")).read_text()
    )
    fake_run_link["artifacts"]["report"]["artifacts"][0]["uri"] = str(link)
    next(run_dir.glob("pipeline/*/validate-dataset/executor_output.json")).write_text(
        json.dumps(fake_run_link)
    )
    assert studio.client.get(f"/runs/{other}/reports/validation").status_code == 404


def test_strings_from_a_run_are_escaped(studio):
    store = MetadataStore(studio.settings.runs_dir)
    try:
        store.start_run(RUN_ID, {"model_name": "<script>alert('model')</script>"})
        store.finish_run(
            RUN_ID, "failed", error="<script>alert('error')</script>", failed_step="tune-adapter"
        )
    finally:
        store.close()
    page = studio.client.get(f"/runs/{RUN_ID}")
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    assert "&lt;script&gt;alert(&#39;error&#39;)&lt;/script&gt;" in page.text
    assert 'id="error" role="alert"' in page.text and "tune-adapter" in page.text
    assert 'id="run-status" class="state state-failed">failed<' in page.text
    listing = studio.client.get("/runs")
    assert "<script>alert" not in listing.text and "&lt;script&gt;alert(&#39;model" in listing.text
    live = studio.client.get(f"/runs/{RUN_ID}.json").json()
    assert live["error"]["message"] == "<script>alert('error')</script>"
    assert "<script>alert" not in live["html"]


def test_the_loss_curve_keeps_the_last_value_of_each_step(studio):
    run_dir = fake_run(studio.settings.runs_dir, RUN_ID)
    lines = [
        {"step": 1, "loss": 3.0},
        {"step": 2, "loss": 2.5},
        {"step": 3, "loss": 9.0},
        {"step": 3, "loss": 2.0},  # resumed from step 2: step 3 again
        "not json",
    ]
    (run_dir / "training_loss.jsonl").write_text(
        "".join((json.dumps(x) if isinstance(x, dict) else x) + "\n" for x in lines)
        + '{"step": 4, "lo'  # a line being written
    )
    live = studio.client.get(f"/runs/{RUN_ID}.json").json()
    assert live["loss"] == [[1, 3.0], [2, 2.5], [3, 2.0]]
    assert live["status"] == "running" and live["final"] is False  # as its manifest says
    page = studio.client.get(f"/runs/{RUN_ID}")
    points = re.search(r'<polyline [^>]*points="([^"]+)" data-steps="3"', page.text)
    assert points and len(points.group(1).split()) == 3


# --- the whole pipeline -----------------------------------------------------------------------


def _wait_final(client: TestClient, run_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        data = client.get(f"/runs/{run_id}.json").json()
        if data["final"]:
            return data
        time.sleep(2)
    raise AssertionError(f"run {run_id} did not end in {timeout} s: {data['status']}")


@pytest.mark.pipeline
@pytest.mark.slow
def test_a_job_started_from_the_form_runs_the_pipeline_to_a_version(tmp_path):
    studio = Studio(tmp_path, adaptune_run)
    try:
        run_id = studio.start(train_steps="150")
        data = _wait_final(studio.client, run_id, timeout=900)
        assert data["status"] == "succeeded", (
            data["error"],
            studio.queue.output(run_id).read_text()[-3000:],
        )
        states = {t["name"]: t["state"] for t in data["tasks"]}
        assert states.pop("deploy-to-vertex") == "skipped"  # no vertex_deploy: visibly skipped
        assert set(states.values()) == {"succeeded"}
        assert data["gate"]["passed"] is True and data["gate"]["reason"].startswith("passed")
        assert data["version"]["text"] == "router v1"
        assert [s for s, _ in data["loss"]] == list(range(1, 151))
        # The run is recorded as ended a moment before its adaptune run process exits.
        wait_for(lambda: studio.queue.get(run_id).state == "done")
        assert studio.queue.get(run_id).exit_code == 0
        page = studio.client.get(f"/runs/{run_id}")
        assert '<a id="version-link" href="/models/router">router v1</a>' in page.text
        assert re.search(r'<polyline [^>]*data-steps="150"', page.text)
        assert '<section id="gate"' in page.text and "did not pass" not in page.text
        assert re.search(r'<form id="cancel-form"[^>]*\shidden>', page.text)  # nothing to cancel
        for name in ("validate-dataset", "evaluate", "register-version"):
            assert f'data-node="{name}"' in page.text
            assert re.search(rf'class="node node-succeeded" data-node="{name}"', page.text)
        for kind in ("validation", "training", "evaluation"):
            assert studio.client.get(f"/runs/{run_id}/reports/{kind}").status_code == 200
    finally:
        studio.stop_all()


@pytest.mark.pipeline
@pytest.mark.slow
def test_a_cancelled_run_shows_cancelled_and_stays_resumable(tmp_path):
    from adaptune.runner.resume import plan_resume

    studio = Studio(tmp_path, adaptune_run)
    try:
        run_id = studio.start(train_steps="20000")

        def tuning_with_loss():
            data = studio.client.get(f"/runs/{run_id}.json").json()
            states = {t["name"]: t["state"] for t in data["tasks"]}
            return states.get("tune-adapter") == "running" and len(data["loss"]) >= 5 and data

        data = wait_for(tuning_with_loss, timeout=600, every=1)
        assert re.search(r"<polyline ", data["html"])  # the curve is drawn while tuning runs
        pid = studio.queue.get(run_id).pid
        assert studio.post(f"/runs/{run_id}/cancel").status_code == 303
        wait_for(lambda: not pid_alive(pid), timeout=30)
        data = studio.client.get(f"/runs/{run_id}.json").json()
        assert data["status"] == "cancelled" and data["final"] is True
        store = MetadataStore(studio.settings.runs_dir, create=False)
        try:
            assert store.run(run_id)["status"] == "failed"  # its process died mid-run
        finally:
            store.close()
        plan = plan_resume(studio.settings.runs_dir, run_id)  # adaptune run --resume accepts it
        assert plan.run_dir == (studio.settings.runs_dir / run_id).resolve()
        assert os.path.isfile(studio.queue.output(run_id))
    finally:
        studio.stop_all()


def test_a_job_whose_process_fails_before_its_run_shows_why(tmp_path):
    def refused(settings, run_id, config):
        script = "import sys; print('error: --run-id <b>taken</b>'); sys.exit(2)"
        return [sys.executable, "-c", script, run_id]

    studio = Studio(tmp_path, refused)
    run_id = studio.start()
    wait_for(lambda: studio.queue.get(run_id).state == "done")
    assert studio.queue.get(run_id).exit_code == 2
    page = studio.client.get(f"/runs/{run_id}")
    assert 'id="run-status" class="state state-failed">failed<' in page.text
    assert 'id="error" role="alert"' in page.text and "exit status 2" in page.text
    assert "error: --run-id &lt;b&gt;taken&lt;/b&gt;" in page.text
    assert re.search(r'<form id="cancel-form"[^>]*\shidden>', page.text)


def test_the_description_field_goes_to_the_run_and_is_checked(studio):
    run_id = studio.start(description="support router <b>v2</b>")
    config = yaml.safe_load((jobs_dir(studio) / run_id / "config.yaml").read_text())
    assert config["description"] == "support router <b>v2</b>"
    refused = studio.post("/jobs/new", job_fields(action="start", description="x" * 2001))
    assert refused.status_code == 400
    assert 'role="alert"' in refused.text and "description" in refused.text
    assert len(studio.queue.jobs()) == 1
