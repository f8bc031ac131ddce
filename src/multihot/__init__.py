"""multihot: multi-label text classification on PyTorch and BERT-family encoders."""

__version__ = "0.1.0"

from multihot.classifier import Classifier  # noqa: E402
from multihot.config import DataConfig, ModelConfig, RunConfig, TrainConfig  # noqa: E402
from multihot.errors import MultihotError  # noqa: E402
from multihot.predictor import Predictor  # noqa: E402

__all__ = [
    "Classifier",
    "DataConfig",
    "ModelConfig",
    "MultihotError",
    "Predictor",
    "RunConfig",
    "TrainConfig",
    "__version__",
]
