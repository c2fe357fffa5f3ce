"""adaptune studio in a real browser: what a user clicks, from the tuning form to serving.

Written against the page contract (labels, roles, ids) the studio's pages keep. Each test starts
``adaptune studio`` as a subprocess on fresh runs and registry directories and drives Debian's
Chromium through Playwright (fixtures in browser.py). Every page visited is checked for named,
keyboard-reachable controls and saved as a screenshot: into ``$ADAPTUNE_SCREENSHOTS`` when set
(``make screenshots`` sets docs/studio), else the test's tmp dir.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urljoin

import httpx
import pytest
from browser import (
    Studio,
    assert_accessible,
    screenshot,
    screenshot_dir,
    serve_process,
)
from conftest import COMPILED, SAMPLE
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser

MODEL = "support-router"
# Short jobs: 150 steps of the sample's settings reach exact_match 0.5375 on its eval split (base
# 0.0), over a gate threshold of 0.3 (the form's "Gate threshold"; test_pipeline_local uses the
# same) and the default 0.1 improvement. Training is deterministic (seed 0), so a second job with
# the same settings scores the same and passes the production check too (tuned >= production -
# tolerance 0): it becomes v2 in production.
JOB = {
    "Model name": MODEL,
    "Training data": str(SAMPLE / "train.jsonl"),
    "Eval data": str(SAMPLE / "eval.jsonl"),
    "Base model": "builtin:tiny-gpt2",
    "Method": "lora",
    "Training steps": "150",
    "Learning rate": "0.003",
    "Gate threshold": "0.3",
}
TUNED_EXACT_MATCH = re.compile(r"0\.5[34]|5[34](\.\d+)? ?%")  # 0.5375, however rounded
TASKS = (
    "validate-dataset",
    "format-text-to-text",
    "tune-adapter",
    "evaluate",
    "passes-gate",
    "register-version",
    "wants-vertex-deploy",
    "deploy-to-vertex",
)
TERMINAL = ("succeeded", "failed", "cancelled", "killed")
RUN_TIMEOUT_S = 900
SCRIPT = "<script>window.__pwned=1</script>"
PAGES = ("/jobs/new", "/runs", "/models", "/try", "/lineage")


def _set(page: Page, label: str, value: str) -> None:
    """Type into the control labelled ``label``, or choose ``value`` when it is a select."""
    control = page.get_by_label(label, exact=True)
    kind = control.evaluate("el => el.tagName === 'SELECT' ? 'select' : el.type")
    if kind == "select":
        control.select_option(value)
    elif kind == "range":  # a slider cannot be typed into: set it as dragging it would
        control.evaluate(
            """(el, value) => { el.value = value;
                 el.dispatchEvent(new Event("input", {bubbles: true}));
                 el.dispatchEvent(new Event("change", {bubbles: true})); }""",
            value,
        )
    else:
        control.fill(value)


def _fill_job(page: Page, values: dict[str, str]) -> None:
    for label, value in values.items():
        _set(page, label, value)


def _start_job(page: Page, studio: Studio, values: dict[str, str]) -> str:
    """Fill the form, press Start; the new run's id (from the page it lands on)."""
    page.goto(studio.url + "/jobs/new")
    _fill_job(page, values)
    page.get_by_role("button", name="Start", exact=True).click()
    page.wait_for_url(re.compile(r"/runs/[^/?#]+$"))
    return page.url.rsplit("/", 1)[1]


def _wait_for_end(page: Page, timeout_s: float = RUN_TIMEOUT_S) -> str:
    """Watch ``#run-status`` (no reload: the page updates it) until the run ends; the status."""
    status = page.locator("#run-status")
    deadline = timeout_s * 1000
    waited = 0
    while waited < deadline:
        text = status.inner_text().strip()
        if text in TERMINAL:
            return text
        page.wait_for_timeout(1000)
        waited += 1000
    pytest.fail(f"{page.url}: still {status.inner_text()!r} after {timeout_s:.0f} s")


def _run_row(page: Page, run_id: str):
    return page.locator("#runs tr").filter(has=page.get_by_role("link", name=run_id, exact=True))


def _run_state(page: Page, run_id: str) -> str:
    return _run_row(page, run_id).locator(".state").inner_text().strip()


def _aliases(page: Page, version: int) -> str:
    """The aliases cell of ``version``'s row in ``#versions`` (found by its column heading)."""
    headings = [h.strip().lower() for h in page.locator("#versions th").all_inner_texts()]
    (column,) = [i for i, h in enumerate(headings) if h.startswith("alias")]
    row = page.locator(f'#versions tr[data-version="{version}"]')
    return row.locator(":scope > td, :scope > th").nth(column).inner_text()


def _node_state(page: Page, task: str) -> str:
    """The state class (node-STATE) of the DAG drawing's node for ``task``."""
    node = page.locator('svg[role="img"][aria-label="Pipeline tasks"]').locator(
        f'g[data-node="{task}"]'
    )
    classes = (node.get_attribute("class") or "").split()
    states = [c.removeprefix("node-") for c in classes if c.startswith("node-")]
    assert len(states) == 1, f"{task}: classes {classes}"
    return states[0]


def _a_prediction_the_tuned_model_got_right(run_dir: Path) -> tuple[str, str]:
    """An eval input the run's evaluation saw the tuned model answer right, and that answer."""
    inputs = [
        json.loads(line)["input_text"]
        for line in (SAMPLE / "eval.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    (predictions,) = run_dir.glob("pipeline/*/evaluate/predictions")
    for line in predictions.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if record["tuned"] == record["reference"] != record["base"]:
            # The prompt is the input in the run's template: find which input it holds.
            raw = max((text for text in inputs if text in record["prompt"]), key=len)
            return raw, record["tuned"]
    pytest.fail(f"{predictions}: the tuned model got nothing right")


def _listed_runs(page: Page, studio: Studio) -> list[str]:
    """The run links the Runs page lists now (fetched beside the page, which stays as it is)."""
    html = page.request.get(studio.url + "/runs").text()
    return re.findall(r'href="/runs/([^"/?#]+)"', html)


def _not_pwned(page: Page) -> None:
    assert page.evaluate("typeof window.__pwned") == "undefined", page.url
    assert page.locator("script", has_text="__pwned").count() == 0, page.url


@pytest.mark.pipeline
@pytest.mark.slow
def test_from_the_form_to_serving_the_rolled_back_version(studio, page, tmp_path):
    shots = screenshot_dir(tmp_path)

    # New tuning job: check the data first, the report shows before anything starts.
    page.goto(studio.url + "/jobs/new")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    assert page.get_by_role("link", name="New tuning job").get_attribute("aria-current") == "page"
    assert_accessible(page)
    _fill_job(page, JOB)
    page.get_by_role("button", name="Check data", exact=True).click()
    report = page.locator("section", has=page.get_by_role("heading", name="Validation report"))
    expect(report).to_be_visible()
    assert re.search(r"\b400\b", report.inner_text()), report.inner_text()  # train records
    assert re.search(r"\b80\b", report.inner_text()), report.inner_text()  # eval records
    for label, value in JOB.items():  # the values are kept
        assert page.get_by_label(label, exact=True).input_value() == value, label
    assert _listed_runs(page, studio) == [], "Check data started a run"
    assert_accessible(page)
    screenshot(page, shots, "new-job")

    # Start two jobs at once: the second waits in the queue behind the first.
    first = _start_job(page, studio, JOB)
    assert page.locator("#run-status").inner_text().strip() in ("queued", "running")
    other = page.context.new_page()
    second = _start_job(other, studio, JOB)
    assert second != first
    other.goto(studio.url + "/runs")
    assert _run_state(other, second) == "queued"
    assert _run_state(other, first) in ("queued", "running")
    ids = [link.inner_text().strip() for link in other.locator("#runs tr td:first-child a").all()]
    assert ids.index(second) < ids.index(first), "runs are listed newest first"
    assert_accessible(other)
    screenshot(other, shots, "runs")

    # The run page follows the run live to its end.
    assert _wait_for_end(page) == "succeeded", page.locator("main").inner_text()
    for task in TASKS[:-1]:
        assert _node_state(page, task) == "succeeded", task
    assert _node_state(page, "deploy-to-vertex") == "skipped"  # no vertex_deploy: local only
    tasks_table = page.locator("#tasks")
    for task in TASKS:
        expect(tasks_table.locator("tr", has_text=task)).to_have_count(1)
    expect(page.locator("#loss-curve")).to_be_visible()
    curve = page.locator("#loss-curve").locator("xpath=descendant-or-self::*[local-name()='svg']")
    assert curve.first.locator("path, polyline").count() > 0, "the loss curve has no line"
    gate = page.locator("#gate")
    assert "passed" in gate.inner_text() and "did not pass" not in gate.inner_text()
    assert "threshold" in gate.inner_text()  # the reason, with the numbers compared
    expect(page.locator("#error")).to_have_count(0)
    version = page.locator("#version-link")
    expect(version).to_have_text(f"{MODEL} v1")
    assert version.get_attribute("href") == f"/models/{MODEL}"
    for name in ("validation", "training", "evaluation"):
        link = page.get_by_role("link", name=re.compile(name, re.IGNORECASE)).first
        report_page = page.request.get(urljoin(page.url, link.get_attribute("href") or ""))
        assert report_page.status == 200, (name, link.get_attribute("href"))
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    assert_accessible(page)
    screenshot(page, shots, "run")

    # The Runs page (not reloaded) shows the first done and the queued one running or done.
    expect(_run_row(other, first).locator(".state")).to_have_text("succeeded", timeout=30_000)
    other.goto(studio.url + f"/runs/{second}")
    assert _wait_for_end(other) == "succeeded", other.locator("main").inner_text()
    assert "passed" in other.locator("#gate").inner_text()
    expect(other.locator("#version-link")).to_have_text(f"{MODEL} v2")
    other.close()

    # Models: two versions, v2 in production; each row links its run and its lineage.
    page.goto(studio.url + "/models")
    row = page.locator("#models tr", has=page.get_by_role("link", name=MODEL, exact=True))
    expect(row).to_have_count(1)
    assert "2" in row.inner_text()
    assert_accessible(page)
    screenshot(page, shots, "models")
    row.get_by_role("link", name=MODEL, exact=True).click()
    page.wait_for_url(studio.url + f"/models/{MODEL}")
    v1, v2 = (page.locator(f'#versions tr[data-version="{n}"]') for n in (1, 2))
    assert "production" in _aliases(page, 2) and "production" not in _aliases(page, 1)
    assert v1.locator(f'a[href="/runs/{first}"]').count() == 1
    assert v2.locator(f'a[href="/runs/{second}"]').count() == 1
    lineage_href = v1.get_by_role("link", name="Lineage").get_attribute("href") or ""
    assert unquote(lineage_href) == f"/lineage?ref={MODEL}@v1"
    expect(page.get_by_role("button", name="Promote v1")).to_be_visible()
    expect(page.get_by_role("button", name="Promote v2")).to_have_count(0)
    assert_accessible(page)
    screenshot(page, shots, "model")

    # Two versions side by side.
    _set(page, "Version A", "1")
    _set(page, "Version B", "2")
    page.get_by_role("button", name="Compare", exact=True).click()
    page.wait_for_url(re.compile(rf"/models/{MODEL}/compare\?a=1&b=2$"))
    compared = page.locator("main").inner_text()
    assert first in compared and second in compared
    assert "exact_match" in compared
    assert TUNED_EXACT_MATCH.search(compared), "the versions' exact_match (0.5375)"
    assert_accessible(page)
    screenshot(page, shots, "compare")

    # Try it: the tuned answer is what the evaluation saw it answer.
    prompt, answer = _a_prediction_the_tuned_model_got_right(studio.runs_dir / first)
    page.goto(studio.url + "/try")
    _set(page, "Model", MODEL)
    _set(page, "Prompt", prompt)
    _set(page, "Temperature", "0")
    _set(page, "Max tokens", "16")
    page.get_by_role("button", name="Try", exact=True).click()
    tuned = page.locator("#answer-tuned")
    expect(tuned).to_be_visible(timeout=120_000)
    assert MODEL in tuned.get_by_role("heading").inner_text()
    assert answer in tuned.inner_text()
    production = page.locator("#answer-production")
    assert "v2" in production.get_by_role("heading").inner_text()
    assert answer in production.inner_text()
    base = page.locator("#answer-base")
    assert "tiny-gpt2" in base.get_by_role("heading").inner_text()
    assert_accessible(page)
    screenshot(page, shots, "try-it")

    # Lineage: the version down to the data files, each with its sha256.
    page.goto(studio.url + "/lineage")
    _set(page, "Version", f"{MODEL}@v2")
    page.get_by_role("button", name="Show", exact=True).click()
    graph = page.locator(f'svg[role="img"][aria-label="Lineage of {MODEL}@v2"]')
    expect(graph).to_be_visible()
    drawn = graph.text_content() or ""
    for name in ("train.jsonl", "eval.jsonl"):
        digest = hashlib.sha256((SAMPLE / name).read_bytes()).hexdigest()[:12]
        assert name in drawn and digest in drawn, (name, digest)
    assert second in drawn
    assert_accessible(page)
    screenshot(page, shots, "lineage")

    # Roll back from the UI: dismissing the confirmation changes nothing; accepting does.
    page.goto(studio.url + f"/models/{MODEL}")
    asked: list[str] = []

    def dismiss(dialog) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    page.get_by_role("button", name="Roll back").click()
    page.wait_for_timeout(500)
    assert asked and asked[0], "no confirmation was asked"
    assert "production" in _aliases(page, 2)

    def accept(dialog) -> None:
        asked.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    page.get_by_role("button", name="Roll back").click()
    page.wait_for_url(re.compile(rf"/models/{MODEL}(\?[^/]*)?$"))  # the outcome may ride along
    expect(page.get_by_role("status")).to_be_visible()
    assert len(asked) == 2
    assert "production" in _aliases(page, 1)
    assert "production" not in _aliases(page, 2)

    # `adaptune serve` on the same registry answers with the version rolled back to.
    with serve_process(studio.registry_dir, tmp_path) as served:
        reply = httpx.post(
            f"{served.url}/v1/endpoints/{MODEL}:predict",
            json={"instances": [{"prompt": prompt}]},
            timeout=120,
        )
    assert reply.status_code == 200, reply.text
    assert reply.json()["modelVersionId"] == "1"
    assert reply.json()["predictions"][0]["content"] == answer


def test_every_page_renders_with_named_reachable_controls(studio, page):
    for path in PAGES:
        response = page.goto(studio.url + path)
        assert response is not None and response.status == 200, path
        assert page.title().endswith("· adaptune studio"), path
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        current = page.locator('nav a[aria-current="page"]')
        assert current.get_attribute("href") == path, path
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.getAttribute('href')") == "#main", path
        assert_accessible(page)
    response = page.goto(studio.url + "/no-such-page")
    assert response is not None and response.status == 404
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_role("navigation", name="Studio")).to_be_visible()


def _bad_data(tmp_path: Path) -> Path:
    """11 good sample records and one without output_text (line 12)."""
    bad = tmp_path / "bad.jsonl"
    good = (SAMPLE / "train.jsonl").read_text().splitlines(True)[:30]
    bad.write_text("".join(good[:11]) + '{"input_text": "refund", "output": "x"}\n')
    return bad


def test_a_missing_data_file_is_refused_on_the_form_and_nothing_starts(studio, page, tmp_path):
    missing = tmp_path / "missing.jsonl"
    values = JOB | {"Training data": str(missing), "Model name": "refused"}
    page.goto(studio.url + "/jobs/new")
    _fill_job(page, values)
    for button in ("Check data", "Start"):
        page.get_by_role("button", name=button, exact=True).click()
        alert = page.get_by_role("alert")
        expect(alert).to_be_visible()
        assert str(missing) in alert.inner_text(), button
        assert page.url.split("?")[0].endswith("/jobs/new"), button
        for label, value in values.items():  # the values are kept
            assert page.get_by_label(label, exact=True).input_value() == value, (button, label)
        assert_accessible(page)
    assert _listed_runs(page, studio) == []
    assert not any(studio.registry_dir.iterdir())


def test_check_data_shows_each_problem_with_its_line(studio, page, tmp_path):
    bad = _bad_data(tmp_path)
    page.goto(studio.url + "/jobs/new")
    _fill_job(page, JOB | {"Training data": str(bad)})
    page.get_by_role("button", name="Check data", exact=True).click()
    expect(page.get_by_role("alert")).to_be_visible()
    report = page.locator("section", has=page.get_by_role("heading", name="Validation report"))
    expect(report).to_be_visible()
    assert f"{bad}:12: missing field 'output_text'" in report.inner_text()
    assert page.get_by_label("Training data", exact=True).input_value() == str(bad)
    assert _listed_runs(page, studio) == []


@pytest.mark.pipeline
@pytest.mark.slow
def test_a_failing_step_and_its_error_are_shown_on_the_run_page(studio, page, tmp_path):
    bad = _bad_data(tmp_path)
    run_id = _start_job(page, studio, JOB | {"Training data": str(bad), "Model name": "failing"})
    assert _wait_for_end(page) == "failed"
    error = page.locator("#error")
    expect(error).to_be_visible()
    assert error.get_attribute("role") == "alert"
    assert "validate-dataset" in error.inner_text()
    assert "missing field 'output_text'" in error.inner_text()
    assert _node_state(page, "validate-dataset") == "failed"
    assert _node_state(page, "tune-adapter") != "succeeded"
    expect(page.locator("#version-link")).to_have_count(0)
    assert_accessible(page)
    page.goto(studio.url + "/runs")
    assert _run_state(page, run_id) == "failed"
    assert not any(studio.registry_dir.glob("failing/v*"))


def test_an_uploaded_file_is_checked_like_a_named_one(studio, page):
    page.goto(studio.url + "/jobs/new")
    _fill_job(page, {k: v for k, v in JOB.items() if k != "Training data"})
    page.get_by_label("Or upload training data", exact=True).set_input_files(
        str(SAMPLE / "train.jsonl")
    )
    page.get_by_role("button", name="Check data", exact=True).click()
    report = page.locator("section", has=page.get_by_role("heading", name="Validation report"))
    expect(report).to_be_visible()
    assert "400" in report.inner_text()
    assert any(studio.runs_dir.glob("studio-uploads/**/train.jsonl"))
    assert _listed_runs(page, studio) == []


@pytest.mark.pipeline
@pytest.mark.slow
def test_cancel_a_queued_and_a_running_job(studio, page):
    running = _start_job(page, studio, JOB | {"Model name": "cancelled"})
    queued_page = page.context.new_page()
    queued = _start_job(queued_page, studio, JOB | {"Model name": "cancelled"})
    expect(queued_page.locator("#run-status")).to_have_text("queued")
    queued_page.once("dialog", lambda dialog: dialog.accept())
    queued_page.get_by_role("button", name="Cancel run").click()
    expect(queued_page.locator("#run-status")).to_have_text("cancelled", timeout=30_000)

    expect(page.locator("#run-status")).to_have_text("running", timeout=120_000)
    # 150 steps: tune-adapter runs for a while; cancel it while it runs.
    expect(page.locator("#task-tune-adapter td.state")).to_have_text("running", timeout=120_000)
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel run").click()
    expect(page.locator("#run-status")).to_have_text("cancelled", timeout=60_000)
    expect(page.get_by_role("button", name="Cancel run")).to_have_count(0)
    states = page.locator("#tasks td.state").all_inner_texts()
    assert states[:3] == ["succeeded", "succeeded", "cancelled"], states  # not "failed"
    assert set(states[3:]) == {"not run"}, states
    page.goto(studio.url + "/runs")
    assert _run_state(page, running) == "cancelled"
    assert _run_state(page, queued) == "cancelled"
    assert not any(studio.registry_dir.glob("cancelled/v*"))


@pytest.mark.pipeline
@pytest.mark.slow
def test_a_script_in_a_prompt_or_a_description_is_shown_as_text(studio, page, tmp_path):
    # A version whose description is a script, registered by `adaptune run --description`
    # (a short run with the gate opened: only the text matters here).
    command = [
        sys.executable,
        "-m",
        "adaptune",
        "run",
        "--compiled",
        str(COMPILED),
        "--runs-dir",
        str(studio.runs_dir),
        "--registry-dir",
        str(studio.registry_dir),
        "--train-data",
        str(SAMPLE / "train.jsonl"),
        "--eval-data",
        str(SAMPLE / "eval.jsonl"),
        "--model-name",
        "hostile",
        "--train-steps",
        "10",
        "--threshold",
        "0",
        "--min-improvement",
        "-1",
        "--description",
        SCRIPT,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    page.goto(studio.url + "/models")
    _not_pwned(page)
    page.goto(studio.url + "/models/hostile")
    row = page.locator('#versions tr[data-version="1"]')
    assert SCRIPT in row.inner_text()
    _not_pwned(page)
    page.goto(studio.url + "/models/hostile/compare?a=1&b=1")
    _not_pwned(page)

    page.goto(studio.url + "/try")
    _set(page, "Model", "hostile")
    _set(page, "Prompt", SCRIPT)
    _set(page, "Max tokens", "4")
    page.get_by_role("button", name="Try", exact=True).click()
    expect(page.locator("#answer-tuned")).to_be_visible(timeout=120_000)
    shown = page.locator("main").inner_text() + page.get_by_label("Prompt").input_value()
    assert SCRIPT in shown, "the prompt is shown back as text"
    _not_pwned(page)
