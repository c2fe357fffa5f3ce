import hashlib

import pytest
import torch

from adaptune.base_models import load_base_model
from adaptune.errors import UserError


def _fingerprint(name: str) -> tuple[str, float]:
    base = load_base_model(name)
    vocab = hashlib.sha256(base.tokenizer.backend_tokenizer.to_str().encode()).hexdigest()
    weights = sum(float(p.detach().double().sum()) for p in base.model.parameters())
    return vocab, weights


@pytest.mark.parametrize(
    ("name", "family"), [("builtin:tiny-gpt2", "causal"), ("builtin:tiny-t5", "seq2seq")]
)
def test_builtin_models_are_deterministic(name, family):
    assert _fingerprint(name) == _fingerprint(name)
    base = load_base_model(name)
    assert base.family == family
    assert base.tokenizer.pad_token_id is not None and base.tokenizer.eos_token_id is not None
    text = "Hi, I was charged twice. Ünïcödé ✓"
    ids = base.tokenizer(text, add_special_tokens=False)["input_ids"]
    assert base.tokenizer.decode(ids) == text


def test_building_a_builtin_model_leaves_the_global_rng_alone():
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    load_base_model("builtin:tiny-gpt2")
    assert torch.equal(torch.rand(3), expected)


def test_checkpoint_directory_loads_with_auto_classes(tmp_path):
    original = load_base_model("builtin:tiny-t5")
    original.model.save_pretrained(tmp_path)
    original.tokenizer.save_pretrained(tmp_path)
    loaded = load_base_model(str(tmp_path))
    assert loaded.family == "seq2seq"
    assert type(loaded.model).__name__ == "T5ForConditionalGeneration"
    for a, b in zip(original.model.parameters(), loaded.model.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["builtin:nope", "/definitely/not/here"])
def test_unknown_base_models_are_user_errors(name):
    with pytest.raises(UserError):
        load_base_model(name)


def test_gs_checkpoint_is_fetched_once_into_the_cache_and_loads(gcs, tmp_path, monkeypatch):
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    monkeypatch.setenv("ADAPTUNE_CACHE_DIR", str(tmp_path / "cache"))
    original = load_base_model("builtin:tiny-t5")
    local = tmp_path / "checkpoint"
    original.model.save_pretrained(local)
    original.tokenizer.save_pretrained(local)
    bucket = storage.Client(project="test", credentials=AnonymousCredentials()).bucket(
        gcs.removeprefix("gs://")
    )
    for file in local.iterdir():
        bucket.blob(f"models/t5/{file.name}").upload_from_filename(str(file))
    loaded = load_base_model(f"{gcs}/models/t5")
    assert loaded.family == "seq2seq"
    for a, b in zip(original.model.parameters(), loaded.model.parameters(), strict=True):
        assert torch.equal(a, b)
    (cached,) = (tmp_path / "cache" / "models").iterdir()
    assert load_base_model(f"{gcs}/models/t5/").name.endswith("/models/t5/")
    assert list((tmp_path / "cache" / "models").iterdir()) == [cached]
    with pytest.raises(UserError, match=r"no config\.json"):
        load_base_model(f"{gcs}/models/missing")
