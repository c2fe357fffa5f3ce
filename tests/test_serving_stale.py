"""The server never serves stale or tampered weights: changed version files are noticed.

A version is answered once (its adapter is then in memory), its files are changed on disk the
way a careless hand or a bad copy would, and it is asked again: files whose bytes still match
the checksums recorded at registration keep serving (a touch, the same bytes rewritten); any
other change is a 503 in Google's error format naming the version and the file, the adapter is
dropped from memory, every other model keeps answering, and the server writes nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import httpx
import pytest
from conftest import serving_in_a_thread
from fastapi.testclient import TestClient
from hostile import invoke, one_line_error, tree
from sample_adapters import save_random_lora

from adaptune.registry import register_version, resolve_version
from adaptune.serving.app import create_app
from adaptune.serving.errors import STATUS_NAMES
from adaptune.serving.freshness import Seen
from adaptune.serving.settings import ServeSettings

pytestmark = pytest.mark.hostile

BASE = "builtin:tiny-gpt2"
WEIGHTS = "adapter_model.safetensors"
CONFIG = "adapter_config.json"
BODY = {
    "instances": [{"prompt": "My parcel is late"}],
    "parameters": {"maxOutputTokens": 4, "temperature": 0},
}


def _writable(path: Path) -> Path:
    """Registered files are read-only; a careless hand makes them writable first."""
    path.chmod(0o644)
    return path


def _rewrite(path: Path, data: bytes) -> None:
    _writable(path).write_bytes(data)


def _flip_a_byte(version: Path, sibling: Path) -> str:
    path = version / WEIGHTS
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    _rewrite(path, bytes(data))
    return WEIGHTS


def _flip_a_byte_and_keep_mtime(version: Path, sibling: Path) -> str:
    path = version / WEIGHTS
    before = path.stat()
    _flip_a_byte(version, sibling)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # size and mtime as they were
    return WEIGHTS


def _append(version: Path, sibling: Path) -> str:
    path = version / WEIGHTS
    _rewrite(path, path.read_bytes() + b"\0")
    return WEIGHTS


def _truncate(version: Path, sibling: Path) -> str:
    path = version / WEIGHTS
    _rewrite(path, path.read_bytes()[:100])
    return WEIGHTS


def _empty(version: Path, sibling: Path) -> str:
    _rewrite(version / WEIGHTS, b"")
    return WEIGHTS


def _other_versions_weights(version: Path, sibling: Path) -> str:
    """A valid adapter, just not this version's: a copy over the wrong directory."""
    (version / WEIGHTS).unlink()
    shutil.copy(sibling / WEIGHTS, version / WEIGHTS)
    return WEIGHTS


def _symlink_to_other_weights(version: Path, sibling: Path) -> str:
    (version / WEIGHTS).unlink()
    (version / WEIGHTS).symlink_to(sibling / WEIGHTS)
    return WEIGHTS


def _delete_weights(version: Path, sibling: Path) -> str:
    (version / WEIGHTS).unlink()
    return WEIGHTS


def _weights_become_a_directory(version: Path, sibling: Path) -> str:
    (version / WEIGHTS).unlink()
    (version / WEIGHTS).mkdir()
    return WEIGHTS


def _edit_config(version: Path, sibling: Path) -> str:
    path = version / CONFIG
    config = json.loads(path.read_text())
    config["lora_alpha"] = config.get("lora_alpha", 16) * 2
    _rewrite(path, json.dumps(config).encode())
    return CONFIG


def _garbage_config(version: Path, sibling: Path) -> str:
    _rewrite(version / CONFIG, b"\xff\xfe not json")
    return CONFIG


def _delete_config(version: Path, sibling: Path) -> str:
    (version / CONFIG).unlink()
    return CONFIG


def _other_files_recorded(version: Path, sibling: Path) -> str:
    """version.json now records other checksums (a hand-edited record): the files don't match."""
    path = version / "version.json"
    record = json.loads(path.read_text())
    record["files"][WEIGHTS] = "0" * 64
    _rewrite(path, json.dumps(record).encode())
    return WEIGHTS


def _checksums_removed(version: Path, sibling: Path) -> str:
    path = version / "version.json"
    record = json.loads(path.read_text())
    del record["files"]
    _rewrite(path, json.dumps(record).encode())
    return "version.json"


def _checksums_not_a_map(version: Path, sibling: Path) -> str:
    path = version / "version.json"
    record = json.loads(path.read_text())
    record["files"] = ["adapter_model.safetensors"]
    _rewrite(path, json.dumps(record).encode())
    return "version.json"


def _garbage_version_json(version: Path, sibling: Path) -> str:
    _rewrite(version / "version.json", b'{"base_model": ')
    return "version.json"


def _version_json_a_list(version: Path, sibling: Path) -> str:
    _rewrite(version / "version.json", b"[1, 2]")
    return "version.json"


def _version_json_binary(version: Path, sibling: Path) -> str:
    _rewrite(version / "version.json", os.urandom(64) + b"\xff")
    return "version.json"


def _delete_version_json(version: Path, sibling: Path) -> str:
    (version / "version.json").unlink()
    return "version.json"


def _garbage_index(version: Path, sibling: Path) -> str:
    _rewrite(version.parent / "index.json", b"{ not an index")
    return "index.json"


def _index_not_a_mapping(version: Path, sibling: Path) -> str:
    _rewrite(version.parent / "index.json", b'"versions"')
    return "index.json"


# Each returns the name of the file the refusal must name.
REFUSED = {
    "weights: a byte flipped": _flip_a_byte,
    "weights: a byte flipped, size and mtime restored": _flip_a_byte_and_keep_mtime,
    "weights: a byte appended": _append,
    "weights: truncated": _truncate,
    "weights: emptied": _empty,
    "weights: another version's copied over": _other_versions_weights,
    "weights: a symlink to another version's": _symlink_to_other_weights,
    "weights: deleted": _delete_weights,
    "weights: a directory now": _weights_become_a_directory,
    "config: edited": _edit_config,
    "config: garbage": _garbage_config,
    "config: deleted": _delete_config,
    "version.json: other checksums recorded": _other_files_recorded,
    "version.json: checksums removed": _checksums_removed,
    "version.json: checksums not a map": _checksums_not_a_map,
    "version.json: truncated JSON": _garbage_version_json,
    "version.json: a list": _version_json_a_list,
    "version.json: binary": _version_json_binary,
    "version.json: deleted": _delete_version_json,
    "index.json: garbage": _garbage_index,
    "index.json: not a mapping": _index_not_a_mapping,
}


def _touch(path: Path) -> None:
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))


def _same_bytes_new_inode(path: Path) -> None:
    copy = path.with_name(path.name + ".copy")
    shutil.copy(path, copy)
    copy.replace(path)


def _same_bytes_in_place(path: Path) -> None:
    _rewrite(path, path.read_bytes())


def _chmod(path: Path) -> None:
    path.chmod(0o600)


# (file, change): the bytes stay the same, so the version keeps serving.
KEPT = {
    "weights touched": (WEIGHTS, _touch),
    "weights: the same bytes, a new inode": (WEIGHTS, _same_bytes_new_inode),
    "weights: the same bytes rewritten in place": (WEIGHTS, _same_bytes_in_place),
    "weights: mode changed": (WEIGHTS, _chmod),
    "config touched": (CONFIG, _touch),
    "config: the same bytes, a new inode": (CONFIG, _same_bytes_new_inode),
    "version.json: the same record rewritten": ("version.json", _same_bytes_new_inode),
    "index.json touched": ("../index.json", _touch),
}


@pytest.fixture(scope="module")
def adapters(tmp_path_factory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("stale-adapters")
    return {seed: save_random_lora(BASE, root / f"seed{seed}", seed=seed) for seed in (1, 2)}


@pytest.fixture(scope="module")
def served(tmp_path_factory, adapters):
    """One server for the module; each case registers a model of its own (v1 and v2)."""
    registry = tmp_path_factory.mktemp("stale") / "registry"
    register_version(registry, "steady", adapters[2], {"base_model": BASE}, promote=True)
    settings = ServeSettings(registry_dir=registry, idle_adapters=64)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield registry, client


_names = iter(range(1, 10_000))


def _new_model(registry: Path, adapters: dict[int, Path]) -> tuple[str, Path, Path]:
    """A model with v1 (seed 1, production) and v2 (seed 2): its name and both directories."""
    name = f"case-{next(_names)}"
    v1 = register_version(registry, name, adapters[1], {"base_model": BASE}, promote=True)
    v2 = register_version(registry, name, adapters[2], {"base_model": BASE})
    return name, v1.path, v2.path


def predict(client: TestClient, ref: str):
    return client.post(f"/v1/endpoints/{ref}:predict", json=BODY)


def chat(client: TestClient, ref: str):
    body = {"model": ref, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
    return client.post("/v1/chat/completions", json=body)


def answer(response) -> str:
    assert response.status_code == 200, response.text
    return response.json()["predictions"][0]["content"]


def assert_refused(response, *named: str) -> str:
    """A 503 in Google's error format, one line, naming each of ``named``; no traceback."""
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == 503 and error["status"] == STATUS_NAMES[503] == "UNAVAILABLE"
    message = error["message"]
    assert "\n" not in message and "Traceback" not in response.text
    for part in named:
        assert part in message, message
    return message


def loaded(client: TestClient) -> set[str]:
    return {ref for group in client.get("/v1/models").json()["loaded"] for ref in group["versions"]}


@pytest.mark.parametrize("name", list(REFUSED))
def test_changed_files_are_refused_and_dropped_and_others_keep_serving(served, adapters, name):
    registry, client = served
    model, v1, v2 = _new_model(registry, adapters)
    first = answer(predict(client, model))
    steady = answer(predict(client, "steady"))
    assert f"{model}@v1" in loaded(client)
    named = REFUSED[name](v1, v2)
    before = tree(registry)
    for ask in (predict, chat, predict):  # refused every time, by every route
        where = "index.json" if named == "index.json" else f"{model}@v1"
        assert_refused(ask(client, model), where, named)
    assert_refused(predict(client, f"{model}@v1"), named)
    assert f"{model}@v1" not in loaded(client)  # dropped from memory
    assert answer(predict(client, "steady")) == steady  # every other model keeps serving
    if named != "index.json":  # the same model's other version too
        assert answer(predict(client, f"{model}@v2")) != first
    assert client.get("/health").status_code == 200
    assert tree(registry) == before  # the server wrote nothing


@pytest.mark.parametrize("name", list(KEPT))
def test_the_same_bytes_keep_serving_the_loaded_adapter(served, adapters, name, monkeypatch):
    registry, client = served
    model, v1, _ = _new_model(registry, adapters)
    first = answer(predict(client, model))
    file, change = KEPT[name]
    change(v1 / file)
    hashed = _count_hashes(monkeypatch)
    assert answer(predict(client, model)) == first
    assert f"{model}@v1" in loaded(client)  # kept in memory, not reloaded
    rehashed = len(hashed)
    for _ in range(3):  # verified once after the change, not on every request
        assert answer(predict(client, model)) == first
    assert len(hashed) == rehashed


def _count_hashes(monkeypatch) -> list[str]:
    from adaptune.registry import local

    hashed: list[str] = []
    real = local.sha256_file

    def counting(path):
        hashed.append(str(path))
        return real(path)

    monkeypatch.setattr(local, "sha256_file", counting)
    return hashed


def test_restored_files_serve_again(served, adapters):
    registry, client = served
    model, v1, v2 = _new_model(registry, adapters)
    first = answer(predict(client, model))
    original = (v1 / WEIGHTS).read_bytes()
    _other_versions_weights(v1, v2)
    assert_refused(predict(client, model), WEIGHTS, "changed since registration")
    assert_refused(predict(client, model), WEIGHTS)  # refused at load too, not loaded
    assert f"{model}@v1" not in loaded(client)
    (v1 / WEIGHTS).unlink()
    (v1 / WEIGHTS).write_bytes(original)
    assert answer(predict(client, model)) == first  # loaded again, from the restored files


def test_a_version_tampered_before_its_first_request_is_never_loaded(served, adapters):
    registry, client = served
    model, v1, v2 = _new_model(registry, adapters)
    _flip_a_byte(v1, v2)
    assert_refused(predict(client, model), f"{model}@v1", str(v1), WEIGHTS)
    assert f"{model}@v1" not in loaded(client)
    assert answer(predict(client, f"{model}@v2"))
    assert answer(predict(client, "steady"))


def test_moving_production_serves_the_new_version_from_the_next_request(served, adapters):
    registry, client = served
    model, _, _ = _new_model(registry, adapters)
    first = predict(client, model)
    assert first.json()["deployedModelId"] == f"{model}@v1"
    assert invoke("promote", f"{model}@v2", "--registry-dir", registry).exit_code == 0
    second = predict(client, model)
    assert second.json()["deployedModelId"] == f"{model}@v2"
    assert answer(second) == answer(predict(client, f"{model}@v2")) != answer(first)
    assert invoke("rollback", model, "--registry-dir", registry).exit_code == 0
    third = predict(client, model)
    assert third.json()["deployedModelId"] == f"{model}@v1"
    assert answer(third) == answer(first)


def test_production_moved_onto_a_tampered_version_is_refused_not_served(served, adapters):
    registry, client = served
    model, v1, v2 = _new_model(registry, adapters)
    answer(predict(client, model))
    answer(predict(client, f"{model}@v2"))  # both in memory
    _append(v2, v1)
    index = registry / model / "index.json"  # moved by hand: promote would refuse it
    record = json.loads(index.read_text())
    record["aliases"] = {"production": 2, "previous": 1}
    index.write_text(json.dumps(record))
    assert_refused(predict(client, model), f"{model}@v2", WEIGHTS)
    assert answer(predict(client, f"{model}@v1"))


def test_preload_refuses_a_tampered_production_and_starts(tmp_path, adapters):
    registry = tmp_path / "registry"
    good = register_version(registry, "good", adapters[1], {"base_model": BASE}, promote=True)
    bad = register_version(registry, "bad", adapters[2], {"base_model": BASE}, promote=True)
    _truncate(bad.path, good.path)
    before = tree(registry)
    app = create_app(ServeSettings(registry_dir=registry), preload_models=True)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert loaded(client) == {"good@v1"}  # preloaded the good one, refused the bad one
        assert answer(predict(client, "good"))
        assert_refused(predict(client, "bad"), "bad@v1", str(bad.path), WEIGHTS)
        assert client.get("/health").status_code == 200
    assert tree(registry) == before


def test_a_live_server_refuses_weights_changed_under_it(tmp_path, adapters):
    registry = tmp_path / "registry"
    version = register_version(registry, "live", adapters[1], {"base_model": BASE}, promote=True)
    other = register_version(registry, "other", adapters[2], {"base_model": BASE}, promote=True)
    with serving_in_a_thread(ServeSettings(registry_dir=registry)) as url:
        ask = f"{url}/v1/endpoints/live:predict"
        first = httpx.post(ask, json=BODY, timeout=60)
        assert first.status_code == 200, first.text
        _other_versions_weights(version.path, other.path)
        refused = httpx.post(ask, json=BODY, timeout=60)
        assert_refused(refused, "live@v1", WEIGHTS)
        # the predict command, asking that server, reports it as one line
        line = one_line_error(invoke("predict", "live", "hi", "--url", url))
        assert "answered 503" in line and WEIGHTS in line
        fine = httpx.post(f"{url}/v1/endpoints/other:predict", json=BODY, timeout=60)
        assert fine.status_code == 200


@pytest.mark.parametrize("command", ["predict", "compare"])
def test_predict_and_compare_in_process_refuse_tampered_weights(tmp_path, adapters, command):
    registry = tmp_path / "registry"
    version = register_version(registry, "local", adapters[1], {"base_model": BASE}, promote=True)
    _flip_a_byte(version.path, version.path)
    before = tree(registry)
    args = ["local", "hi"] if command == "predict" else ["local", "--prompt", "hi"]
    line = one_line_error(invoke(command, *args, "--registry-dir", registry))
    assert "local@v1" in line and WEIGHTS in line and "changed since registration" in line
    assert tree(registry) == before


def test_the_per_request_check_reads_no_file_and_costs_microseconds(tmp_path, adapters):
    registry = tmp_path / "registry"
    register_version(registry, "fast", adapters[1], {"base_model": BASE}, promote=True)
    version = resolve_version(registry, "fast")
    seen = Seen.now(version)
    calls = 2000
    started = time.perf_counter()
    for _ in range(calls):
        assert seen.matches(version)
    per_check = (time.perf_counter() - started) / calls
    assert per_check < 0.002, f"{per_check * 1e6:.0f} µs per check"


def test_requests_to_an_unchanged_version_hash_nothing(served, adapters, monkeypatch):
    registry, client = served
    model, _, _ = _new_model(registry, adapters)
    answer(predict(client, model))  # loaded and verified once
    hashed = _count_hashes(monkeypatch)
    for _ in range(10):
        answer(predict(client, model))
    assert hashed == []
