"""The API's routes, one module per group, each with a ``router`` that
:func:`multihot.serve.app.create_app` includes: :mod:`.predict` (``/v1/predict``), :mod:`.tei`
(``/predict``, in the shape of Hugging Face text-embeddings-inference), :mod:`.info` (labels, the
model, health, readiness, metrics), :mod:`.page` (``/``) and :mod:`.docs` (``/docs``, Swagger UI
served from the installed package)."""
