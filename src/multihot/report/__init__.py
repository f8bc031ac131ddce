"""Seeing a model: the HTML report (:mod:`multihot.report.html`), its plots
(:mod:`multihot.report.plots`) and per-label explanations rendered (:mod:`multihot.report.explanation`;
computed by :mod:`multihot.inference.explain`)."""
