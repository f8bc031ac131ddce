"""Inference: probabilities from a run's model, on PyTorch or ONNX Runtime, behind :class:`Predictor`."""
