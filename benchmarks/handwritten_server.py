"""The server a user would write by hand, for ``serve_load.py`` to compare against.

FastAPI calling a ``transformers`` text-classification pipeline on a run's Hugging Face export
(``multihot export RUN --format hf``), sigmoid per label, one request at a time (the pipeline is
called inside the async endpoint, as a tutorial would write it), thresholds applied by hand.

    python benchmarks/handwritten_server.py RUN/hf --port 8001
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel
from transformers import pipeline


class Request(BaseModel):
    texts: list[str]
    return_probs: bool = False


def build(hf_dir: Path) -> FastAPI:
    config = json.loads((hf_dir / "config.json").read_text())
    thresholds = config["multihot_thresholds"]["thresholds"]  # label name -> threshold
    classify = pipeline(
        "text-classification",
        model=str(hf_dir),
        top_k=None,
        function_to_apply="sigmoid",
        device="cpu",
    )
    app = FastAPI()

    @app.get("/health")
    async def health():
        return {"ok": True}

    @app.post("/predict")
    async def predict(request: Request):
        outputs = classify(request.texts, truncation=True)
        answers = []
        for scores in outputs:
            probs = {s["label"]: s["score"] for s in scores}
            answer = {"labels": [n for n, p in probs.items() if p >= thresholds[n]]}
            if request.return_probs:
                answer["probs"] = probs
            answers.append(answer)
        return {"predictions": answers}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("hf_dir", type=Path)
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(build(args.hf_dir), host="127.0.0.1", port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
