"""Exporting a run: an ONNX graph (fp32 or int8) or a Hugging Face model directory.

Every export ends with a check. fp32 graphs and Hugging Face directories get a **parity check**:
the exported model and the run's PyTorch model in fp32 score the same texts (a fixed, seeded set of
texts built from the tokenizer's vocabulary at lengths from one word to past ``max_length``, plus
any texts of the user's), and the largest absolute difference in probability must be within a
tolerance. int8 graphs are judged by what users see (:mod:`multihot.export.int8`): on the run's
validation rows, macro F1 with thresholds re-tuned for the int8 graph (calibration refitted, for a
calibrated run) within :data:`~multihot.export.int8.MAX_F1_DROP` of the fp32 graph's; the
re-tuned thresholds and calibration are saved in the graph. (A run without validation rows gets
the parity check, with a looser tolerance and 99% of decisions agreeing.) The export is written to
a temporary file or directory next to its destination and renamed into place only when the check
passes: an export that fails raises :class:`multihot.core.errors.ExportError` and leaves nothing
behind.

- ONNX: inputs ``input_ids`` and ``attention_mask`` (int64, ``(batch, sequence)``, both axes
  dynamic), output ``probabilities`` ``(batch, num_labels)``: the sigmoid is inside the graph. The
  labels, thresholds (the content of thresholds.json; an int8 graph's own, with the run's under
  ``run_thresholds``), ``max_length`` and multihot version travel in the model's metadata_props as
  JSON strings. Single models and seed ensembles both export.
- Hugging Face: a run whose pooling and head are exactly its encoder family's classification head
  (BERT and ALBERT: ``pooling="pooler"``, ``head="linear"``; RoBERTa, XLM-R, MPNet, ELECTRA,
  DistilBERT, DeBERTa-v2: ``pooling="cls"``, an mlp head of the encoder's width with the family's
  activation; see :data:`multihot.export.hf.HF_HEADS`) becomes a directory that
  ``AutoModelForSequenceClassification`` and ``pipeline("text-classification")`` load as they are,
  with ``problem_type="multi_label_classification"`` and the thresholds in the config.
"""

from multihot.export.hf import export_hf
from multihot.export.int8 import MAX_F1_DROP, Int8Accuracy, Int8Settings
from multihot.export.onnx import export_onnx
from multihot.export.parity import FORMATS, ExportResult, Parity, read_check_texts

__all__ = [
    "FORMATS",
    "MAX_F1_DROP",
    "ExportResult",
    "Int8Accuracy",
    "Int8Settings",
    "Parity",
    "export_hf",
    "export_onnx",
    "read_check_texts",
]
