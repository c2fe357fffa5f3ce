import pytest

from adaptune.errors import UserError
from adaptune.registry.local import list_versions, register_version


def test_versions_are_numbered_immutable_and_carry_metadata(trained_adapter, tmp_path):
    first = register_version(
        tmp_path, "router", trained_adapter["adapter"], {"run_id": "r1", "data_sha256": "abc"}
    )
    second = register_version(tmp_path, "router", trained_adapter["adapter"], {"run_id": "r2"})
    assert (first.version, second.version) == (1, 2)
    assert first.metadata["run_id"] == "r1" and first.metadata["data_sha256"] == "abc"
    assert [v.ref for v in list_versions(tmp_path, "router")] == ["router@v1", "router@v2"]
    weights = first.path / "adapter_model.safetensors"
    assert not weights.stat().st_mode & 0o222
    assert not [p for p in (tmp_path / "router").iterdir() if p.name.startswith(".")]


def test_a_taken_version_number_is_never_overwritten(trained_adapter, tmp_path):
    taken = tmp_path / "router" / "v1"
    taken.mkdir(parents=True)
    (taken / "keep").write_text("someone else's")
    version = register_version(tmp_path, "router", trained_adapter["adapter"], {})
    assert version.version == 2
    assert (taken / "keep").read_text() == "someone else's"


@pytest.mark.parametrize("name", ["../escape", "a/b", "", "UPPER", "x" * 65, "a..b"])
def test_unsafe_names_are_rejected(trained_adapter, tmp_path, name):
    with pytest.raises(UserError, match="invalid model name"):
        register_version(tmp_path, name, trained_adapter["adapter"], {})


def test_a_directory_without_adapter_files_is_rejected(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"missing adapter_config\.json"):
        register_version(tmp_path / "reg", "router", tmp_path / "empty", {})
    assert not list_versions(tmp_path / "reg", "router")
