"""Curves also to TensorBoard or Weights & Biases, when asked (`--set train.logger=tensorboard | wandb`).

`metrics.jsonl` and `result.csv` stay the source of truth (reports and figures read them); these are views for
people who keep their curves in TensorBoard or W&B. Every record the trainer writes to metrics.jsonl (train and
validation points) passes through `log`, as scalars named `<split>/<metric>` at its step.

    tensorboard   event files in <run_dir>/tensorboard: `tensorboard --logdir runs`
    wandb         a W&B run with the run id as id and name, config attached; offline (files under
                  <run_dir>/wandb, `wandb sync` them later) unless WANDB_MODE says otherwise

Both are optional extras (`pip install 'lra_wavelet[tensorboard]'` / `'lra_wavelet[wandb]'`), imported only
when asked for. A resumed run continues its curves from the checkpoint's step (later points are dropped).
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import UserError


class Logger:
    """Logs nothing (train.logger: none)."""

    def log(self, rec: dict) -> None:
        pass

    def close(self) -> None:
        pass


def _scalars(rec: dict) -> dict:
    split = rec.get("split", "train")
    return {f"{split}/{k}": float(v) for k, v in rec.items()
            if k not in ("step", "split") and isinstance(v, (int, float)) and not isinstance(v, bool)}


class TensorBoard(Logger):
    def __init__(self, run_dir: Path, start_step: int):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError("train.logger=tensorboard needs the tensorboard package: "
                            "pip install 'lra_wavelet[tensorboard]'") from None
        # purge_step: points at or after the checkpoint's step, written before a kill, are hidden on resume
        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / "tensorboard"), purge_step=start_step or None)

    def log(self, rec: dict) -> None:
        for name, v in _scalars(rec).items():
            self.writer.add_scalar(name, v, rec["step"])

    def close(self) -> None:
        self.writer.close()


class WandB(Logger):
    def __init__(self, run_dir: Path, run_id: str, config: dict):
        try:
            import wandb
        except ImportError:
            raise UserError("train.logger=wandb needs the wandb package: pip install 'lra_wavelet[wandb]'") from None
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "lra_wavelet"), id=run_id, name=run_id,
                              resume="allow", dir=str(run_dir), config=config,
                              mode=os.environ.get("WANDB_MODE", "offline"))

    def log(self, rec: dict) -> None:
        self.run.log(_scalars(rec), step=rec["step"])

    def close(self) -> None:
        self.run.finish()


def make(kind: str, run_dir: Path, run_id: str, cfg, start_step: int = 0) -> Logger:
    """The logger `train.logger` names (`none`: one that logs nothing)."""
    if kind == "tensorboard":
        return TensorBoard(run_dir, start_step)
    if kind == "wandb":
        from .config import yaml_ready

        return WandB(run_dir, run_id, yaml_ready(cfg.to_dict()))
    return Logger()
