"""Shared fixtures; installs the socket guard here and in every subprocess."""

from __future__ import annotations

import json
import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import netguard  # tests/ is on sys.path (rootdir-relative conftest)
import pytest
from browser import chromium, page, studio  # noqa: F401 (fixtures: a real browser)

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
SAMPLE = REPO / "data" / "sample"
COMPILED = REPO / "compiled" / "adapter_tuning.yaml"
GOOD_DATA = TESTS / "data" / "good"
BUCKET = "adaptune-test"

netguard.install()
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(TESTS / "socket_guard"), os.environ.get("PYTHONPATH", "")) if p
)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ["GCE_METADATA_HOST"] = "127.0.0.1:1"
os.environ["GCE_METADATA_IP"] = "127.0.0.1:1"


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def sample_dir() -> Path:
    return SAMPLE


@pytest.fixture
def small_data(tmp_path: Path) -> tuple[Path, Path]:
    """The first 64 train and 16 eval records of the sample, as files in tmp_path."""
    train = tmp_path / "train.jsonl"
    evaluation = tmp_path / "eval.jsonl"
    train.write_text("".join((SAMPLE / "train.jsonl").read_text().splitlines(True)[:64]))
    evaluation.write_text("".join((SAMPLE / "eval.jsonl").read_text().splitlines(True)[:16]))
    return train, evaluation


@pytest.fixture(scope="session")
def trained_adapter(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A real adapter trained briefly on the sample (shared by tests that only read it)."""
    from adaptune.data.formatting import format_text_to_text
    from adaptune.data.validation import validate_dataset
    from adaptune.tuning.adapter import tune_adapter
    from adaptune.tuning.methods import LoraMethod
    from adaptune.tuning.settings import TrainingSettings

    root = tmp_path_factory.mktemp("adapter")
    validate_dataset(str(SAMPLE / "train.jsonl"), str(SAMPLE / "eval.jsonl"), root / "valid")
    formatted = format_text_to_text(root / "valid", root / "formatted")
    tune_adapter(
        formatted.files["train"],
        root / "adapter",
        "builtin:tiny-gpt2",
        TrainingSettings(steps=150),
        LoraMethod(),
        show_progress=False,
    )
    return {"formatted": root / "formatted", "adapter": root / "adapter", "root": root}


@pytest.fixture
def adapter(tmp_path: Path) -> Path:
    """Adapter files as the registry sees them (their content is opaque to it)."""
    directory = tmp_path / "adapter"
    directory.mkdir()
    (directory / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (directory / "adapter_model.safetensors").write_bytes(os.urandom(4096))
    return directory


@pytest.fixture
def copy_tree():
    def copy(src: Path, dst: Path) -> Path:
        shutil.copytree(src, dst)
        return dst

    return copy


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def gcs(monkeypatch):
    """A GCS emulator in this process on a free loopback port, with files uploaded to it."""
    from gcp_storage_emulator.server import create_server
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    port = _free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=BUCKET)
    server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    try:
        client = storage.Client(project="test", credentials=AnonymousCredentials())
        bucket = client.bucket(BUCKET)
        for name in ("vertex_text.jsonl", "openai_chat.jsonl", "table.parquet"):
            bucket.blob(f"data/{name}").upload_from_filename(str(GOOD_DATA / name))
        bucket.blob("bad/broken.jsonl").upload_from_string(b'{"input_text": "x"}\n')
        yield f"gs://{BUCKET}"
    finally:
        server.stop()


@contextmanager
def serving_in_a_thread(settings) -> Iterator[str]:
    """A real uvicorn server for ``settings`` on 127.0.0.1 (port chosen by the OS); its URL."""
    import threading
    import time

    import uvicorn

    from adaptune.serving.app import create_app

    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=0, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "server did not start"
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
