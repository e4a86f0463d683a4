"""Publish a trained model folder to the Hugging Face Hub (or, with a dry run, say exactly what would go)."""

from __future__ import annotations

from pathlib import Path

from ..errors import PushError
from ..fileio import atomic_write_json, sha256_file
from ..settings import HUB_TOKEN_ENVS, hub_token

# What a sentence-transformers folder needs; checkpoints, caches and temp files never go.
EXCLUDE_PARTS = ("checkpoints", ".cache", "__pycache__")


def upload_plan(model_dir: str | Path, repo_id: str) -> dict:
    d = Path(model_dir)
    if not (d / "modules.json").exists():
        raise PushError(f"{d}: not a sentence-transformers model folder (no modules.json)")
    if "/" not in repo_id or repo_id.count("/") != 1 or any(not part for part in repo_id.split("/")):
        raise PushError(f"repo id {repo_id!r} must look like 'user-or-org/model-name'")
    files = []
    for path in sorted(d.rglob("*")):
        rel = path.relative_to(d)
        if not path.is_file() or any(part in EXCLUDE_PARTS or part.startswith(".") for part in rel.parts):
            continue
        files.append({"path": rel.as_posix(), "bytes": path.stat().st_size, "sha256": sha256_file(path)})
    if not any(f["path"] == "README.md" for f in files):
        raise PushError(f"{d}: no model card (README.md); train with prompt-retriever to get one")
    return {"repo_id": repo_id, "model_dir": str(d), "files": files, "total_bytes": sum(f["bytes"] for f in files)}


def push(
    model_dir: str | Path,
    repo_id: str,
    *,
    dry_run: bool = False,
    private: bool = False,
    plan_path: str | Path | None = None,
) -> dict:
    """Dry run: write the upload plan (every file, size, sha256) and return it. Otherwise upload those files."""
    plan = upload_plan(model_dir, repo_id)
    plan["dry_run"] = dry_run
    if plan_path is not None:
        atomic_write_json(plan_path, plan)
    if dry_run:
        return plan
    token = hub_token()
    if not token:
        raise PushError(f"no Hub token: set one of {', '.join(HUB_TOKEN_ENVS)}")
    from ..encoding.models import set_offline

    set_offline(False)
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(
            folder_path=str(model_dir),
            repo_id=repo_id,
            repo_type="model",
            allow_patterns=[f["path"] for f in plan["files"]],
            commit_message="Upload prompt-retriever fine-tuned model",
        )
    except Exception as exc:  # network, auth, permissions: one clear message without the token
        # `from None`: the original exception (whose text may hold the token) stays out of tracebacks
        raise PushError(f"push to {repo_id} failed: {type(exc).__name__}: {str(exc).replace(token, '***')}") from None
    return plan
