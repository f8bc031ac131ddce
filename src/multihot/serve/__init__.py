"""Serving: the HTTP API with micro-batching (:mod:`~multihot.serve.app`,
:mod:`~multihot.serve.batcher`), the page to try a model, and a Python client
(:class:`~multihot.serve.client.Client`). FastAPI and uvicorn come with the ``serve`` extra; the
client needs neither."""
