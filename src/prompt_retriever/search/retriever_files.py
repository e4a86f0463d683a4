"""`RetrieverFiles`: what `PromptRetriever` writes to and reads from disk, an index folder (`save`,
`save_live`, `load`) and a pipeline run (`save_run`, `from_run`), over `persistence` and `deployment`.
A mixin of `PromptRetriever` only (it reads and sets the retriever's fields), kept apart so that the
search module stays about searching.

>>> r = PromptRetriever.from_run("runs/bundled", backend="onnx-int8")   # doctest: +SKIP
>>> r.save_live()                                                      # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Self

from ..corpus import corpus_fingerprint
from ..encoding.encoder import Encoder
from ..errors import IndexLoadError, InputError
from .deployment import check_run_index, deploy_model, inside_run, read_system, run_model, write_system
from .live import DRIFT_FILE, read_drift, staged_dir
from .persistence import IndexFiles, read_manifest, write_index


class RetrieverFiles:
    """Saving and loading for `PromptRetriever` (see the module docstring)."""

    def save_run(self, run_dir: str | Path, info: dict) -> Path:
        """Make `run_dir` deployable: the index in `run_dir/index/`, then (last) `run_dir/system.json`
        holding `info` (label, how it was chosen, its numbers) with the system, model and fingerprints.
        The run holds every file it names: a local model folder outside it is copied into
        `run_dir/models/<name>/` (a bundled model or a hub id is named), and every path is relative to it."""
        d = Path(run_dir)
        d.mkdir(parents=True, exist_ok=True)
        model, model_path = deploy_model(self.model_name, d)
        self.save(d / "index", model_path=str(model_path) if model_path is not None else None)
        record = {
            **info,
            **self.system.to_dict(),
            "model": model,
            "model_fingerprint": self.fingerprint,
            "backend": self.encoder.backend,
            "template": self.template,
            "index": "index",
            "corpus_fingerprint": corpus_fingerprint(self.prompts),
        }
        return write_system(d, record)

    @classmethod
    def from_run(cls, run_dir: str | Path, *, backend: str | None = None, engine: str = "exact", **kwargs) -> Self:
        """The system a pipeline run chose (`run_dir/system.json`), as it was measured, over its index as
        live updates left it (`drift` says how far it moved since). Refuses a run whose recorded corpus,
        model (weights, configuration or tokenizer) or index changed otherwise since, a forged
        field, and a model or index path that leads out of the run; `backend` switches inference (e.g.
        onnx-int8), `engine` where it searches (`use_engine`). Works from any current folder: every path is
        relative to the run."""
        d = Path(run_dir)
        info = read_system(d)
        index_dir = inside_run(d, info["index"], "index")
        model = run_model(d, info)  # before anything is loaded: the model the numbers were measured with
        r = cls.load(index_dir, model=model, **kwargs)
        check_run_index(
            d,
            info,
            fingerprint=r.fingerprint,
            template=r.template,
            backend=r.encoder.backend,
            prompts=r.prompts,
            system=r.system,
            drift_since=r.drift.since,
            removed=len(r.drift.removed),
        )
        if backend is not None and backend != r.encoder.backend:
            r.use_encoder(Encoder(model, backend=backend, allow_download=kwargs.get("allow_download")))
        r.run_info, r.run_dir = info, d
        return r.use_engine(engine) if engine != "exact" else r

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path, *, model_path: str | None = None) -> Path:
        """Write `embeddings.npy`, `prompts.jsonl` and (last) `manifest.json` with checksums. A local
        model folder (`model_path`, default this retriever's) is recorded relative to the index folder, so
        the index loads from any current folder (and moves with its model)."""
        drift = self.drift
        if self.engine is not None:  # the engine's statistics and the fingerprints its points now match
            self.engine.source = self._engine_source()
            self.engine.persist()
        return write_index(
            Path(directory),
            self.prompts,
            self.embeddings,
            model=model_path or self.model_name,
            fingerprint=self.fingerprint,
            backend=self.encoder.backend,
            template=self.template,
            system=self.system,
            drift=drift.to_dict(corpus_fingerprint(self.prompts)) if drift.since is not None else None,
        )

    def save_live(self, directory: str | Path | None = None) -> Path:
        """Write the index, with its drift, over the index folder it was loaded from (or `directory`):
        written whole beside it, then swapped in (`search.live.staged_dir`), so the folder always holds a
        whole index, the old one or the new. Take `search.live.locked` around load, change and save when
        other processes may update the same folder."""
        target = Path(directory) if directory is not None else self.__dict__.get("source")
        if target is None:
            raise InputError("this index was not loaded from a folder: give one to save it to")
        with staged_dir(target) as work:
            self.save(work)
        return target

    @staticmethod
    def read_manifest(directory: str | Path) -> dict:
        """An index folder's `manifest.json`, read bounded (`persistence.read_manifest`)."""
        return read_manifest(directory)

    @classmethod
    def load(cls, directory: str | Path, model: str | None = None, *, engine: str = "exact", **kwargs) -> Self:
        """Load an index (with the inference backend it was built with). With `model`, refuse an index
        built with a different model (weights, configuration or tokenizer). Every manifest field is checked
        before use: one IndexLoadError for anything forged (`persistence.IndexFiles`). `engine`: see
        `use_engine`."""
        files = IndexFiles.read(directory)
        kwargs.setdefault("system", files.system)
        retriever = cls(model or files.model_name(), template=files.template, backend=files.backend, **kwargs)
        files.check_model(retriever.model_name, retriever.fingerprint)
        prompts, embeddings = files.contents()
        if files.count and retriever.system.kind != "bm25":
            try:
                model_dim = retriever.encoder.dimension
            except Exception:  # noqa: BLE001 - a model that cannot say its dimension fails later, clearly
                model_dim = files.dimension
            if model_dim != files.dimension:
                raise IndexLoadError(
                    f"{files.directory}: embeddings have dimension {files.dimension}, the model {model_dim}"
                )
        retriever.prompts, retriever.embeddings = prompts, embeddings
        retriever._sync(prompts, embeddings, bm25="lazy")
        retriever.source = files.directory
        if DRIFT_FILE in files.blobs:
            where = str(files.directory / DRIFT_FILE)
            drift, after = read_drift(files.blobs[DRIFT_FILE], where)
            if after != corpus_fingerprint(prompts):
                raise IndexLoadError(f"{where}: does not describe the prompts of this index (changed by hand?)")
            retriever._drift = drift
        return retriever.use_engine(engine) if engine != "exact" else retriever
