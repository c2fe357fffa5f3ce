"""The studio's shell: the token and CSRF checks, escaping, the SVG graphs, the CLI's refusals."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from fastapi import APIRouter, Form
from fastapi.testclient import TestClient

from adaptune.cli import main
from adaptune.studio.app import create_app
from adaptune.studio.graphs import Node, columns, svg
from adaptune.studio.settings import StudioSettings

REPO = Path(__file__).resolve().parent.parent
COMPILED = REPO / "compiled" / "adapter_tuning.yaml"


def _app(tmp_path: Path, token: str | None = None):
    settings = StudioSettings(tmp_path / "runs", tmp_path / "registry", COMPILED, token=token)
    app = create_app(settings)
    probe = APIRouter()
    changed: list[str] = []

    @probe.post("/probe")
    def post_probe(value: str = Form("")) -> dict[str, str]:
        changed.append(value)
        return {"value": value}

    app.include_router(probe)
    return app, settings, changed


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(tmp_path):
    app, settings, changed = _app(tmp_path)
    client = TestClient(app)
    assert client.post("/probe", data={"value": "x"}).status_code == 403
    assert client.post("/probe", data={"value": "x", "csrf_token": "wrong"}).status_code == 403
    assert client.post("/probe", headers={"X-CSRF-Token": "wrong"}).status_code == 403
    assert changed == []
    ok = client.post("/probe", data={"value": "a", "csrf_token": settings.csrf_token})
    assert ok.status_code == 200
    header = client.post(
        "/probe", data={"value": "b"}, headers={"X-CSRF-Token": settings.csrf_token}
    )
    assert header.status_code == 200
    assert changed == ["a", "b"]


def test_each_studio_has_its_own_csrf_token(tmp_path):
    first = StudioSettings(tmp_path, tmp_path, COMPILED)
    second = StudioSettings(tmp_path, tmp_path, COMPILED)
    assert first.csrf_token != second.csrf_token
    assert len(first.csrf_token) >= 32


def test_the_token_is_needed_for_every_page_and_login_sets_a_cookie(tmp_path):
    app, settings, _ = _app(tmp_path, token="s3cret")
    client = TestClient(app)
    assert client.get("/static/studio.css").status_code == 200  # static files carry no data
    refused = client.get("/", follow_redirects=False)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert client.get("/login?token=nope", follow_redirects=False).status_code == 401
    assert client.get("/", headers={"Authorization": "Bearer s3cret"}, follow_redirects=False)
    login = client.get("/login?token=s3cret", follow_redirects=False)
    assert login.status_code == 303
    cookie = login.headers["set-cookie"]
    assert "adaptune_token=s3cret" in cookie and "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert client.get("/", follow_redirects=False).status_code == 303  # the cookie is kept
    assert client.post("/probe", data={"csrf_token": settings.csrf_token}).status_code == 200


def test_an_error_page_escapes_what_it_shows(tmp_path):
    app, _, _ = _app(tmp_path)
    client = TestClient(app)
    page = client.get("/<script>alert(1)</script>", headers={"Accept": "text/html"})
    assert page.status_code == 404
    assert "<script>alert" not in page.text
    assert 'name="csrf-token"' in page.text
    assert client.get("/nothing").json() == {"detail": "Not Found"}


def test_graph_labels_are_escaped_and_columns_follow_the_edges():
    nodes = [
        Node("a", "<script>x</script>", "ok", "succeeded", href="/runs/a?x=1&y=2"),
        Node("b", "b", state="not run"),
        Node("c", "c"),
    ]
    edges = [("a", "b"), ("b", "c"), ("a", "c"), ("c", "missing")]
    assert columns(nodes, edges) == {"a": 0, "b": 1, "c": 2}
    drawn = svg(nodes, edges, 'Graph "one"')
    assert "<script>" not in drawn and "&lt;script&gt;" in drawn
    assert 'href="/runs/a?x=1&amp;y=2"' in drawn
    assert 'aria-label="Graph &quot;one&quot;"' in drawn
    assert "node-not-run" in drawn
    assert drawn.count("marker-end=") == 3  # the edge to an unknown node is not drawn


def test_a_cycle_does_not_hang_the_layout():
    nodes = [Node("a", "a"), Node("b", "b")]
    assert set(columns(nodes, [("a", "b"), ("b", "a")])) == {"a", "b"}


def test_studio_refuses_an_address_off_loopback_without_a_token(tmp_path):
    result = CliRunner().invoke(
        main, ["studio", "--host", "0.0.0.0", "--runs-dir", str(tmp_path / "runs")]
    )
    assert result.exit_code == 2
    assert "--host 0.0.0.0" in result.output and "--token" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_studio_refuses_a_missing_compiled_pipeline(tmp_path):
    result = CliRunner().invoke(
        main,
        ["studio", "--compiled", str(tmp_path / "none.yaml"), "--runs-dir", str(tmp_path / "r")],
    )
    assert result.exit_code == 2
    assert "--compiled" in result.output
