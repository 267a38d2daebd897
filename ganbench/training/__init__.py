"""The training engine: one loop in named steps (``loop``, ``steps``), what it trains (``models``),
checkpoints (``checkpoint``), the CUDA-graph fast path (``cudagraph``)."""

from ganbench.training.checkpoint import CHECKPOINT_DIR, FINAL_WEIGHTS, LAST_CHECKPOINT, checkpoint_path, run_dir_for, write_records
from ganbench.training.loop import Callbacks, TrainOptions, TrainResult, train, train_runs, train_together
from ganbench.training.models import (batch_blockers, build_models, check_batchable, check_together, make_optimizer,
                                   num_classes, step_dependencies)

__all__ = ["CHECKPOINT_DIR", "FINAL_WEIGHTS", "LAST_CHECKPOINT", "Callbacks", "TrainOptions", "TrainResult", "batch_blockers", "build_models", "check_batchable",
           "check_together", "checkpoint_path", "make_optimizer", "num_classes", "run_dir_for", "step_dependencies", "train",
           "train_runs", "train_together", "write_records"]
