"""``adaptune studio``: the web pages (tuning form, runs, models, Try it, lineage)."""

from __future__ import annotations

from pathlib import Path

import click

from adaptune.cli.errors import reports_errors
from adaptune.cli.options import compiled_option, registry_dir_option, writable_runs_dir_option
from adaptune.errors import UserError

STUDIO_TOKEN_ENV = "ADAPTUNE_STUDIO_TOKEN"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@click.command()
@writable_runs_dir_option
@registry_dir_option
@compiled_option(" a started job runs")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="Port."
)
@click.option(
    "--token",
    envvar=STUDIO_TOKEN_ENV,
    default=None,
    help=f"Token every request must carry (required off loopback; env {STUDIO_TOKEN_ENV}). "
    "A browser logs in once at /login?token=TOKEN.",
)
@reports_errors
def studio(
    runs_dir: Path, registry_dir: Path, compiled: Path, host: str, port: int, token: str | None
) -> None:
    """Start adaptune studio: start tuning jobs, watch runs, browse and promote models.

    Reads and writes only --runs-dir and --registry-dir, plus the data files you name.
    Open http://127.0.0.1:8765/ (the address it prints).
    """
    import uvicorn

    from adaptune.studio.app import create_app
    from adaptune.studio.settings import StudioSettings

    if host not in LOOPBACK and not token:
        raise UserError(
            f"--host {host}: the studio starts runs and promotes versions; off loopback it "
            f"needs --token (or {STUDIO_TOKEN_ENV})"
        )
    if not compiled.is_file():
        raise UserError(f"--compiled {compiled}: no such file")
    settings = StudioSettings(
        runs_dir=runs_dir.resolve(),
        registry_dir=registry_dir.resolve(),
        compiled=compiled.resolve(),
        token=token or None,
    )
    click.echo(
        f"adaptune studio on http://{host}:{port}/ (runs {runs_dir}, registry {registry_dir})"
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
