"""Live experiment tracking (``--report-to tensorboard,mlflow``) through Accelerate's trackers.

Each evaluation's record (losses, metrics, seconds) is logged at its optimiser step, and the run's
configuration as hyperparameters, so a user watches a run in TensorBoard or MLflow while it trains.
Every tracker writes under ``tracking_dir``, one subdirectory (experiment) per run: its name and the
time it started; the members of a seed ensemble are runs of their own.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from multihot.core.config import TrainConfig
from multihot.core.errors import ConfigError

logger = logging.getLogger(__name__)

PACKAGES = {"tensorboard": "tensorboard", "mlflow": "mlflow"}
"""The package each tracker needs."""


@dataclass
class Tracking:
    """What the trackers of one training call: its name and the hyperparameters to record."""

    name: str = "multihot"
    hparams: dict[str, Any] = field(default_factory=dict)


def check_trackers(config: TrainConfig) -> list[str]:
    """The trackers ``config.report_to`` asks for; a clear error when one's package is missing."""
    for tracker in config.trackers:
        if importlib.util.find_spec(PACKAGES[tracker]) is None:
            raise ConfigError(
                f"report_to: {tracker} is not installed; pip install {PACKAGES[tracker]}"
            )
    return config.trackers


def flat_hparams(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as ``{"train/lr": 1e-4, ...}`` with the scalar types trackers take (None
    becomes "none", lists their JSON-ish text)."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(flat_hparams(value, f"{name}/"))
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        else:
            out[name] = "none" if value is None else str(value)
    return out


def start(accelerator, config: TrainConfig, tracking: Tracking | None) -> bool:
    """Start the accelerator's trackers for this run; False when ``report_to`` names none."""
    if not config.trackers:
        return False
    name = f"{(tracking or Tracking()).name}-{time.strftime('%Y%m%d-%H%M%S')}"
    accelerator.init_trackers(name, config=(tracking or Tracking()).hparams)
    logger.info("logging to %s in %s/%s", ", ".join(config.trackers), config.tracking_dir, name)
    return True


def log(accelerator, record: dict[str, Any], step: int) -> None:
    """One evaluation's numbers (``val/macro_f1``, ``train/loss``, ...) at optimiser step ``step``."""
    values = {}
    for key, value in record.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or key == "step":
            continue
        values["train/loss" if key == "train_loss" else f"val/{key.removeprefix('val_')}"] = value
    accelerator.log(values, step=step)
