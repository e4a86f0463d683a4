from __future__ import annotations

import json
import logging
import shutil
import ssl
from pathlib import Path

import pytest
from llm_server import FakeChatServer, completion, run_llm_generate

from prompt_retriever.encoding.models import load_model, resolve_model
from prompt_retriever.llm import ChatClient, LLMError

KEY = "sk-PLANTED-secret-key-9f8e7d6c5b4a"


def test_model_folder_code_is_never_executed(tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(resolve_model("all-MiniLM-L6-v2").location, folder)
    marker = tmp_path / "pwned"
    (folder / "evil.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\nfrom transformers import BertModel\n"
        "class EvilModel(BertModel):\n    pass\n"
    )
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModel": "evil.EvilModel", "AutoConfig": "evil.EvilConfig"}
    (folder / "config.json").write_text(json.dumps(config))
    try:
        model = load_model(str(folder))
        assert model.encode(["x"]).shape == (1, 384)
    except Exception as exc:  # refusing to load is fine too; running the code is not
        assert "trust_remote_code" in str(exc) or "remote code" in str(exc).lower()
    assert not marker.exists()


def test_no_pickle_loading_in_the_code():
    src = Path(__file__).parents[1] / "src" / "prompt_retriever"
    for path in src.rglob("*.py"):
        text = path.read_text()
        assert "allow_pickle=True" not in text, path
        assert "pickle.load" not in text and "torch.load(" not in text, path


def test_tls_verification_is_on_by_default():
    c = ChatClient("https://127.0.0.1:9/v1", "m")
    assert c.verify_tls is True
    ctx = c._client._transport._pool._ssl_context
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
    insecure = ChatClient("https://127.0.0.1:9/v1", "m", verify_tls=False)
    assert insecure._client._transport._pool._ssl_context.verify_mode == ssl.CERT_NONE


def test_planted_key_never_reaches_files_logs_or_errors(tmp_path, monkeypatch, caplog):

    monkeypatch.setenv("PROMPT_RETRIEVER_LLM_API_KEY", KEY)
    monkeypatch.setenv("PROMPT_RETRIEVER_CACHE_DIR", str(tmp_path / "cache"))
    corpus = Path(__file__).parent / "data" / "golden12.txt"

    def echo_key(body, n):  # a hostile server that echoes the key back in its errors
        if n % 3 == 0:
            return (400, {}, json.dumps({"error": f"bad key {KEY}"}).encode(), 0.0)
        title = body["messages"][0]["content"].split("Title: ")[1].split("\n")[0]
        return (200, {}, completion(f"query about {title[::-1]}\n{KEY} as a query"), 0.0)

    with caplog.at_level(logging.DEBUG), FakeChatServer(echo_key) as srv:
        res = run_llm_generate(srv.base_url, corpus, str(tmp_path / "g"), "--allow-partial", model="m")
        with pytest.raises(LLMError) as exc:
            ChatClient(srv.base_url, "m", api_key=KEY, max_retries=0).complete([{"role": "user", "content": "x"}])
    assert KEY not in str(exc.value)
    assert KEY not in res.output and KEY not in caplog.text
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.suffix == ".json" for p in written)
    for p in written:  # golden set, manifest, pairs.csv and the completion cache
        assert KEY not in p.read_text(encoding="utf-8", errors="replace"), p
    manifest = json.loads((tmp_path / "g" / "manifest.json").read_text())
    assert manifest["dropped"]["contained the API key"] >= 1
