"""A model registry in a directory: ``<registry>/<model>/v<N>/`` holds one immutable version.

Each version holds its kind's files (``kinds.py``: the adapter files, or a managed Gemini model's
``tuned_model.json``) and ``version.json`` (base model, run id, data hash,
metrics, time, and ``files``: each file's sha256, which ``verify_version`` checks before an alias
moves to it). A version is copied into a hidden staging directory without the lock (copying
may be slow), then, under the model's lock, renamed to ``v<N>`` and committed by one atomic
replace of the model's index (``index.py``), aliases included. Files are made read-only.
"""

from __future__ import annotations

import filecmp
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from adaptune.atomic import write_json_atomic
from adaptune.errors import UserError
from adaptune.hashing import sha256_file, tree_files
from adaptune.kill_points import kill_point
from adaptune.registry.aliases import move_production
from adaptune.registry.index import (
    METADATA_FILE,
    PENDING_FILE,
    BrokenRecord,
    ModelIndex,
    locked_index,
    model_dir,
    read_index,
    staging_prefix,
)
from adaptune.registry.kinds import (
    ADAPTER_FILES,
    VERTEX_GEMINI,
    check_tuned_model,
    required_files,
    version_kind,
)
from adaptune.registry.refs import VERSION_PATTERN, version_number
from adaptune.registry.version_lineage import LINEAGE_FILE, lineage_record


@dataclass(frozen=True)
class RegisteredVersion:
    """One registered version.

    Attributes:
        model: Model name.
        version: Version number, from 1.
        path: The version's directory.
        metadata: Contents of ``version.json``.
    """

    model: str
    version: int
    path: Path
    metadata: dict[str, Any]

    @property
    def ref(self) -> str:
        """``model@vN``."""
        return f"{self.model}@v{self.version}"

    @property
    def base_model(self) -> str:
        """The base model it was tuned on (``version.json``, else the adapter's config).

        Raises:
            UserError: If neither names one.
        """
        name = self.metadata.get("base_model")
        if not name:
            config_file = self.path / ADAPTER_FILES[0]
            config = json.loads(config_file.read_text(encoding="utf-8"))
            name = config.get("base_model_name_or_path")
        if not name:
            raise UserError(f"{self.ref} does not say which base model it was tuned on")
        return str(name)


def _load(registry_dir: Path, model: str, number: int) -> RegisteredVersion:
    """The version's record.

    Raises:
        UserError: If its ``version.json`` is missing or not a JSON object: path and reason.
    """
    path = model_dir(registry_dir, model) / f"v{number}"
    file = path / METADATA_FILE
    try:
        metadata = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BrokenRecord(f"{model}@v{number} is broken: {file} is missing") from None
    except (OSError, ValueError) as exc:
        raise BrokenRecord(f"{model}@v{number} is broken: {file} is unreadable: {exc}") from None
    if not isinstance(metadata, dict):
        raise BrokenRecord(f"{model}@v{number} is broken: {file} is not a JSON object")
    return RegisteredVersion(model, number, path, metadata)


def list_versions(registry_dir: Path, model: str) -> list[RegisteredVersion]:
    """All versions of ``model``, oldest first (empty when the model is unknown).

    Raises:
        UserError: If the index or a version's ``version.json`` is unreadable (see
            ``survey_model`` for a listing that reports them instead).
    """
    return [_load(registry_dir, model, n) for n in read_index(registry_dir, model).versions]


@dataclass(frozen=True)
class ModelSurvey:
    """A model as ``models list`` shows it: what can be read, and what cannot.

    Attributes:
        model: Model name.
        versions: The readable versions, oldest first.
        aliases: Alias name to version number.
        problems: One line per unreadable part: its path and the reason.
    """

    model: str
    versions: list[RegisteredVersion]
    aliases: dict[str, int]
    problems: list[str]


def survey_model(registry_dir: Path, model: str) -> ModelSurvey:
    """The model's index and versions, reporting a corrupt index or version instead of raising."""
    try:
        index = read_index(registry_dir, model)
    except UserError as exc:
        return ModelSurvey(model, [], {}, [str(exc)])
    versions, problems = [], []
    for number in index.versions:
        try:
            versions.append(_load(registry_dir, model, number))
        except UserError as exc:
            problems.append(str(exc))
    return ModelSurvey(model, versions, dict(index.aliases), problems)


def file_checksums(directory: Path) -> dict[str, str]:
    """Each file of a version directory (``version.json`` and the pending marker aside): sha256."""
    return {
        name: sha256_file(path)
        for name, path in tree_files(directory)
        if name not in (METADATA_FILE, PENDING_FILE)
    }


def verify_version(version: RegisteredVersion) -> str:
    """Check a version's files against the checksums recorded when it was registered.

    Returns:
        An empty string when every recorded file matches; a note when the version was
        registered before checksums were recorded (its files exist, their content is unchecked).

    Raises:
        UserError: If a file is missing, changed or unreadable: the version's path and why.
    """
    recorded = version.metadata.get("files")
    where = f"{version.ref} ({version.path})"
    try:
        needed = required_files(version.metadata)
    except UserError as exc:
        raise BrokenRecord(f"{where} is broken: {exc}") from None
    if recorded is None:
        missing = [f for f in ADAPTER_FILES if not (version.path / f).is_file()]
        if missing:
            raise BrokenRecord(f"{where} is broken: missing {', '.join(missing)}")
        try:
            config = json.loads((version.path / ADAPTER_FILES[0]).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise BrokenRecord(
                f"{where} is broken: {ADAPTER_FILES[0]} is unreadable: {exc}"
            ) from None
        if not isinstance(config, dict):
            raise BrokenRecord(f"{where} is broken: {ADAPTER_FILES[0]} is not a JSON object")
        return (
            f"{where} was registered before checksums were recorded: its files exist, but "
            "their content could not be verified"
        )
    if not isinstance(recorded, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in recorded.items()
    ):
        raise BrokenRecord(
            f"{where} is broken: 'files' in {METADATA_FILE} is not a name→sha256 map"
        )
    unrecorded = sorted(set(needed) - set(recorded))
    if unrecorded:
        raise BrokenRecord(
            f"{where} is broken: {METADATA_FILE} records no checksum for {', '.join(unrecorded)}"
        )
    for name, expected in sorted(recorded.items()):
        path = version.path / name
        if not path.is_file():
            raise BrokenRecord(f"{where} is broken: {name} is missing")
        try:
            actual = sha256_file(path)
        except OSError as exc:
            raise BrokenRecord(f"{where} is broken: {name} is unreadable: {exc}") from None
        if actual != expected:
            raise BrokenRecord(
                f"{where} is broken: {name} changed since registration "
                f"(sha256 {actual[:12]}…, recorded {expected[:12]}…)"
            )
    return ""


def resolve_version(registry_dir: Path, model: str, ref: str = "production") -> RegisteredVersion:
    """The version ``ref`` names: ``production``, ``previous``, ``latest``, ``vN`` or ``N``.

    Raises:
        UserError: If the model, alias or version does not exist.
    """
    index = read_index(registry_dir, model)
    if not index.versions:
        raise UserError(f"no model {model!r} in registry {registry_dir}")
    number = version_number(ref)
    if number is None:
        number = index.versions[-1] if ref == "latest" else index.aliases.get(ref)
        if number is None:
            raise UserError(f"{model} has no {ref!r} version (aliases: {index.aliases or 'none'})")
    elif number not in index.versions:
        raise UserError(f"{model} has no version v{number} (versions: {index.versions})")
    return _load(registry_dir, model, number)


def find_production(registry_dir: Path, model: str) -> RegisteredVersion | None:
    """The version ``production`` points at; None when the model has none (or no versions)."""
    number = read_index(registry_dir, model).aliases.get("production")
    return None if number is None else _load(registry_dir, model, number)


def _make_read_only(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            path.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)


def _next_number(directory: Path, taken: list[int]) -> int:
    on_disk = [int(m.group(1)) for c in directory.iterdir() if (m := VERSION_PATTERN.match(c.name))]
    return max([*taken, *on_disk], default=0) + 1


@dataclass(frozen=True)
class Registration:
    """What registering a gated version did.

    Attributes:
        version: The registered version.
        promoted: Whether ``production`` now points at it.
        note: Why it was not promoted (empty when it was).
        deploy_first: Whether it waits for its Vertex AI deploy to be promoted (registered, not
            promoted, and production has not moved since the gate compared with it).
    """

    version: RegisteredVersion
    promoted: bool
    note: str = ""
    deploy_first: bool = False


def _same_files(a: Path, b: Path, names: tuple[str, ...] = ADAPTER_FILES) -> bool:
    """Whether two version directories hold the same files ``names``, byte for byte."""
    return all(filecmp.cmp(a / name, b / name, shallow=False) for name in names)


def _earlier_attempt(
    registry_dir: Path, model: str, index: ModelIndex, adapter_dir: Path, run_id: str
) -> RegisteredVersion | None:
    """A version this very run registered before (a retried task), with the same adapter."""
    for number in reversed(index.versions):
        try:
            earlier = _load(registry_dir, model, number)
            if earlier.metadata.get("run_id") == run_id and _same_files(
                earlier.path, adapter_dir, required_files(earlier.metadata)
            ):
                return earlier
        except (UserError, OSError):
            continue  # a broken version is not this run's; it is reported by models list
    return None


def _ever_production(index: ModelIndex, number: int) -> bool:
    return any(
        isinstance(h, dict)
        and isinstance(h.get("aliases"), dict)
        and h["aliases"].get("production") == number
        for h in index.history
    )


def _register(
    registry_dir: Path,
    model: str,
    adapter_dir: Path,
    metadata: dict[str, Any],
    promote: Callable[[ModelIndex], str | None] | None,
    deploy_first: bool = False,
) -> Registration:
    """Copy, number, commit; ``promote(index)`` says why not to promote (None: promote).

    With ``deploy_first`` the version is not promoted even when ``promote`` allows it: the
    release promotes it after its Vertex AI deploy (``promote_gated``). A run that registers the
    same adapter again (its register task retried after the commit) gets its earlier version
    back rather than a duplicate.

    The write order makes a crash at any instant safe: the adapter files, then ``lineage.json``,
    then ``version.json`` in a hidden staging directory; the rename to ``v<N>``; the index write
    (the commit, aliases included); the pending marker's removal. Before the rename nothing is
    visible; after it the version is complete, lineage included, and the next writer lists it.
    """
    directory = model_dir(registry_dir, model)
    kind = version_kind(metadata)
    if kind == VERTEX_GEMINI:
        check_tuned_model(metadata)
    missing = [f for f in required_files(metadata) if not (Path(adapter_dir) / f).is_file()]
    if missing:
        what = "an adapter" if kind == "adapter" else f"a {kind} version"
        raise UserError(f"{adapter_dir} is not {what}: missing {', '.join(missing)}")
    directory.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=directory, prefix=staging_prefix()))
    staging.chmod(0o755)
    try:
        shutil.copytree(adapter_dir, staging, dirs_exist_ok=True)
        (staging / PENDING_FILE).touch()
        with locked_index(registry_dir, model, create=True) as index:
            run_id = metadata.get("run_id")
            if run_id and (
                earlier := _earlier_attempt(registry_dir, model, index, adapter_dir, run_id)
            ):
                return _again(index, earlier, promote, deploy_first)
            number = _next_number(directory, index.versions)
            kill_point("register:before-lineage")
            write_json_atomic(
                staging / LINEAGE_FILE,
                lineage_record(model, number, adapter_dir, staging, metadata),
            )
            kill_point("register:after-lineage")
            record = {
                **metadata,
                "kind": kind,
                "model": model,
                "version": number,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "files": file_checksums(staging),
            }
            write_json_atomic(staging / METADATA_FILE, record)
            kill_point("register:after-version-file")
            final = directory / f"v{number}"
            os.rename(staging, final)
            kill_point("register:after-rename")
            try:
                _make_read_only(final)
                index.versions.append(number)
                note = "not asked to promote" if promote is None else promote(index)
                if note is None and not deploy_first:
                    move_production(index, number, "register")
            except BaseException:
                os.rename(final, staging)  # not committed: leave no version behind
                raise
        # Committed: the index lists it. A kill before this line leaves only a harmless mark.
        kill_point("register:after-commit")
        (final / PENDING_FILE).unlink(missing_ok=True)
        version = RegisteredVersion(model, number, final, record)
        if note is None and deploy_first:
            return Registration(version, False, DEPLOY_FIRST_NOTE, True)
        return Registration(version, note is None, note or "")
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


DEPLOY_FIRST_NOTE = "promoted only once its Vertex AI deploy succeeds"


def _again(
    index: ModelIndex,
    earlier: RegisteredVersion,
    promote: Callable[[ModelIndex], str | None] | None,
    deploy_first: bool,
) -> Registration:
    """A retried registration: the version this run registered before, promoted if it may be."""
    if index.aliases.get("production") == earlier.version:
        return Registration(earlier, True)
    allowed = (
        promote is not None
        and not _ever_production(index, earlier.version)
        and promote(index) is None
    )
    if allowed and deploy_first:
        return Registration(earlier, False, DEPLOY_FIRST_NOTE, True)
    if allowed:
        # Killed before its commit, recovered since: it never served; promote it now.
        move_production(index, earlier.version, "register")
        return Registration(earlier, True)
    return Registration(earlier, False, f"{earlier.ref} was registered by this run before")


def register_version(
    registry_dir: Path,
    model: str,
    adapter_dir: Path,
    metadata: dict[str, Any],
    promote: bool = False,
) -> RegisteredVersion:
    """Register the adapter in ``adapter_dir`` as the next version of ``model``.

    Args:
        registry_dir: Root of the registry; created when missing.
        model: Model name (validated).
        adapter_dir: An adapter directory; every file in it is copied.
        metadata: Facts stored in ``version.json`` (run id, data hash, metrics, ...); the model
            name, version number and creation time are added.
        promote: Also point ``production`` at the new version (``previous`` at the old one), in
            the same atomic index write.

    Returns:
        The new version.

    Raises:
        UserError: If the name is invalid or the adapter files are missing.
    """
    always = (lambda index: None) if promote else None
    return _register(registry_dir, model, adapter_dir, metadata, always).version


def register_and_promote(
    registry_dir: Path,
    model: str,
    adapter_dir: Path,
    metadata: dict[str, Any],
    evaluated_against: int,
    deploy_first: bool = False,
) -> Registration:
    """Register a version that passed the gate and make it production, all or nothing.

    The gate compared the new version with production ``evaluated_against`` (0: none). If
    another run moved ``production`` since, that comparison no longer holds: the version is
    still registered (it can be promoted by hand) but ``production`` stays where it is.

    Args:
        registry_dir: Root of the registry; created when missing.
        model: Model name (validated).
        adapter_dir: An adapter directory; every file in it is copied.
        metadata: Facts stored in ``version.json`` (and ``lineage.json``).
        evaluated_against: The production version number the gate compared with; 0 for none.
        deploy_first: Register without promoting: the release deploys the version to Vertex AI
            first and promotes it afterwards with ``promote_gated`` (the result says whether
            it still may: ``deploy_first``).

    Returns:
        The version, whether it was promoted and, if not, why.

    Raises:
        UserError: If the name is invalid or the adapter files are missing.
    """

    def unless_production_moved(index: ModelIndex) -> str | None:
        return stale_note(evaluated_against, index.aliases.get("production", 0))

    recorded = {"evaluated_against": evaluated_against, **metadata}
    return _register(
        registry_dir, model, adapter_dir, recorded, unless_production_moved, deploy_first
    )


def stale_note(evaluated_against: int, current: int) -> str | None:
    """Why a gated version may not be promoted now; None while production is the one compared."""
    if current == evaluated_against:
        return None
    was = f"v{evaluated_against}" if evaluated_against else "none"
    now = f"v{current}" if current else "none"
    return (
        f"not promoted: production moved from {was} to {now} while this run was evaluated; "
        "compare again (rerun) or promote it by hand"
    )
