"""The API's routes, one module per group, each with a ``router`` that
:func:`multihot.serve.app.create_app` includes: :mod:`.predict` (``/v1/predict``), :mod:`.info`
(labels, the model, health, readiness, metrics) and :mod:`.page` (``/``)."""
