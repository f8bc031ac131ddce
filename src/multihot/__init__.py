"""multihot: multi-label text classification on PyTorch and BERT-family encoders.

The names below are imported when first used, so that ``import multihot.cli`` (and so
``multihot --help``) does not pay for torch and transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from multihot.core.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "AuditResult": "multihot.quality.result",
    "BatchPredictor": "multihot.batch.predictor",
    "Classifier": "multihot.classifier",
    "Client": "multihot.serve.client",
    "Predictor": "multihot.inference.predictor",
    "DataConfig": "multihot.core.config",
    "ModelConfig": "multihot.core.config",
    "RunConfig": "multihot.core.config",
    "TrainConfig": "multihot.core.config",
    "MultihotError": "multihot.core.errors",
    "audit": "multihot.report.audit",
    "cross_validate": "multihot.tuning.cv",
    "CVResult": "multihot.tuning.cv",
    "FoldResult": "multihot.tuning.cv",
    "search": "multihot.tuning.search",
    "SearchResult": "multihot.tuning.search",
    "TrialRecord": "multihot.tuning.search",
    "SearchSpace": "multihot.tuning.space",
    "suggest": "multihot.quality.suggest",
    "Suggestions": "multihot.quality.suggest",
}

if TYPE_CHECKING:
    from multihot.batch.predictor import BatchPredictor
    from multihot.classifier import Classifier
    from multihot.core.config import DataConfig, ModelConfig, RunConfig, TrainConfig
    from multihot.core.errors import MultihotError
    from multihot.inference.predictor import Predictor
    from multihot.quality.result import AuditResult
    from multihot.quality.suggest import Suggestions, suggest
    from multihot.report.audit import audit
    from multihot.serve.client import Client
    from multihot.tuning.cv import CVResult, FoldResult, cross_validate
    from multihot.tuning.search import SearchResult, TrialRecord, search
    from multihot.tuning.space import SearchSpace


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "AuditResult",
    "BatchPredictor",
    "CVResult",
    "Classifier",
    "Client",
    "DataConfig",
    "FoldResult",
    "ModelConfig",
    "MultihotError",
    "Predictor",
    "RunConfig",
    "SearchResult",
    "SearchSpace",
    "Suggestions",
    "TrainConfig",
    "TrialRecord",
    "__version__",
    "audit",
    "cross_validate",
    "search",
    "suggest",
]
