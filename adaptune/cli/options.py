"""Options and option types several commands share, each declared once."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

import click

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_COMPILED = REPO_ROOT / "compiled" / "adapter_tuning.yaml"
REGISTRY_ENV = "ADAPTUNE_REGISTRY_DIR"
# One meaning of "experiment" for every command; each store adds where the name is recorded.
EXPERIMENT = "Experiment: a named group of runs you list and compare together."

Func = TypeVar("Func", bound=Callable[..., Any])


def apply_options(options: Iterable[Callable[[Func], Func]]) -> Callable[[Func], Func]:
    """A decorator adding ``options`` to a command, in the order listed (as ``--help`` shows)."""
    chosen = list(options)

    def decorate(func: Func) -> Func:
        for option in reversed(chosen):
            func = option(func)
        return func

    return decorate


class PathOption(click.Path):
    """A path option whose value holding NUL is a one-line usage error naming the option."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Refuse NUL, then convert as ``click.Path`` does."""
        if "\x00" in str(value):
            self.fail("contains a NUL character (\\x00)", param, ctx)
        return super().convert(value, param, ctx)


def path_option_type() -> PathOption:
    """The type of a path option: a ``pathlib.Path``, NUL refused."""
    return PathOption(path_type=Path)


MAX_JSON_DEPTH = 32


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise ValueError(f"key {key!r} appears twice")
    return dict(pairs)


def parse_json(text: str) -> Any:
    """A JSON value from a flag: no repeated keys, at most ``MAX_JSON_DEPTH`` levels deep.

    Raises:
        ValueError: On invalid JSON (a ``json.JSONDecodeError`` among them), a repeated key,
            nesting too deep or a number too long to read.
    """
    depth = 0
    for char in text:  # brackets inside strings count too: a bound, not a parser
        depth += 1 if char in "[{" else -1 if char in "]}" else 0
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"nested more than {MAX_JSON_DEPTH} levels deep")
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except RecursionError:
        raise ValueError("nested too deeply") from None


class JsonMapping(click.ParamType):
    """An option's value that is a JSON object, e.g. ``'{"method": "lora", "r": 16}'``.

    Anything else is a usage error (exit 2) naming the option, on one line.
    """

    name = "json"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """Parse ``value`` as a JSON object (a mapping given from Python passes as it is)."""
        if isinstance(value, dict):
            return value
        try:
            parsed = parse_json(value)
        except ValueError as exc:
            self.fail(f"not valid JSON: {exc}", param, ctx)
        if not isinstance(parsed, dict):
            self.fail(f"must be a JSON object, got {type(parsed).__name__}", param, ctx)
        return parsed


JSON_MAPPING = JsonMapping()


def json_mapping_option(flag: str, dest: str, example: str, what: str) -> Callable[[Func], Func]:
    """An option taking a JSON object: ``what`` and an example value in its help."""
    return click.option(flag, dest, type=JSON_MAPPING, help=f"{what} as JSON, e.g. '{example}'.")


runs_dir_option = click.option(
    "--runs-dir",
    type=path_option_type(),
    default=Path("runs"),
    show_default=True,
    help="Where run directories and metadata.sqlite live.",
)


def _writable_runs_dir(ctx: click.Context, param: click.Parameter, value: Path) -> Path:
    """The ``--runs-dir`` of a command that writes runs: refused at once if unusable."""
    from adaptune.cli.errors import fail
    from adaptune.errors import UserError
    from adaptune.runner.params import check_writable_dir

    try:
        check_writable_dir("--runs-dir", value)
    except UserError as exc:
        fail(str(exc))
    return value


writable_runs_dir_option = click.option(
    "--runs-dir",
    type=path_option_type(),
    default=Path("runs"),
    show_default=True,
    callback=_writable_runs_dir,
    help="Where run directories and metadata.sqlite live (a directory this command can write).",
)

registry_dir_option = click.option(
    "--registry-dir",
    type=path_option_type(),
    default=Path("registry"),
    show_default=True,
    envvar=REGISTRY_ENV,
    help=f"Model registry directory (env {REGISTRY_ENV}).",
)

# `adaptune serve` also takes a gs:// registry and, on Vertex AI, AIP_STORAGE_URI, so its
# default is decided by the command.
serve_registry_dir_option = click.option(
    "--registry-dir",
    default=None,
    envvar=REGISTRY_ENV,
    help=f"Model registry: a directory, or gs:// (copied at start) (env {REGISTRY_ENV}; else "
    "AIP_STORAGE_URI; else ./registry).",
)


def compiled_option(note: str = "") -> Callable[[Func], Func]:
    """``--compiled``: the compiled pipeline YAML (``note`` adds to its help)."""
    return click.option(
        "--compiled",
        type=path_option_type(),
        default=DEFAULT_COMPILED,
        show_default=True,
        help=f"Compiled pipeline YAML{note}.",
    )


json_output_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")

verbose_option = click.option(
    "--verbose",
    is_flag=True,
    help="Print the pipeline's executor log as it runs instead of the task table "
    "(it always goes to the run's run.log).",
)
