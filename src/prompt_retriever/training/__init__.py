"""Fine-tuning: training rows, batches without false negatives, the trainer, model soups, cards and Hub upload.

- `config`: `TrainConfig`, the settings of one fine-tune.
- `data`: training rows from the train split only, hard negatives mined with the base model.
- `batching`: `QrelsBatchSampler`, batches in which no row is a false negative of another.
- `train`: `train`, the fine-tune itself, and the manifest it writes.
- `checkpoint_eval`: `DevNDCGEvaluator`, the dev NDCG@10 (graded, the project's trec_eval-exact metric)
  that picks the checkpoint, measured as `evaluation` measures the dense system.
- `cards`: the model card (fine-tune or soup) and training curves of a model folder.
- `soup`: `make_soup` and `train_soup`, weight averages of fine-tunes.
- `push`: upload a model folder to the Hugging Face Hub.

Importing this package stays cheap: torch and sentence-transformers load when a model is trained. The
batching names and `DevNDCGEvaluator` are the exception (each subclasses a sentence-transformers
class), so they are imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..errors import PushError, SoupError
from .cards import model_card, soup_card, update_card_with_test, write_training_curves
from .config import TrainConfig
from .data import TrainRow, assert_no_heldout_in_training, mine_hard_negatives, select_rows, training_rows
from .push import push, upload_plan
from .soup import SoupResult, ingredient_configs, make_soup, train_soup
from .train import TrainResult, dev_evaluator, train, training_manifest

if TYPE_CHECKING:
    from .batching import QrelsBatchSampler, batch_sampler_factory, compatible, plan_batches
    from .checkpoint_eval import DevNDCGEvaluator

_BATCHING = ("QrelsBatchSampler", "batch_sampler_factory", "compatible", "plan_batches")


def __getattr__(name: str):
    if name in _BATCHING:
        from . import batching

        return getattr(batching, name)
    if name == "DevNDCGEvaluator":
        from .checkpoint_eval import DevNDCGEvaluator

        return DevNDCGEvaluator
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DevNDCGEvaluator",
    "PushError",
    "QrelsBatchSampler",
    "SoupError",
    "SoupResult",
    "TrainConfig",
    "TrainResult",
    "TrainRow",
    "assert_no_heldout_in_training",
    "batch_sampler_factory",
    "compatible",
    "dev_evaluator",
    "ingredient_configs",
    "make_soup",
    "mine_hard_negatives",
    "model_card",
    "plan_batches",
    "push",
    "select_rows",
    "soup_card",
    "train",
    "train_soup",
    "training_manifest",
    "training_rows",
    "update_card_with_test",
    "upload_plan",
    "write_training_curves",
]
