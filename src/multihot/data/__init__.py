"""Data: reading files into texts and labels, the label set, splits, texts -> token ids, batches,
prediction output. Nothing here knows about models or training."""

from multihot.data.readers import Dataset, iter_text_batches, read_dataset, read_goemotions

__all__ = ["Dataset", "iter_text_batches", "read_dataset", "read_goemotions"]
