#!/usr/bin/env python3
"""Record reference embeddings of the default encoder, computed by Python onnxruntime.

semrouter's tests embed the same texts through its Rust ONNX backend and compare: this checks
tokenisation, token_type_ids, mean pooling, normalisation and truncation against an
independent implementation of the same model file.

    python onnx/reference_minilm.py     # after `make setup`; writes onnx/reference/all-MiniLM-L6-v2-int8.json

Needs onnxruntime==1.31.1, tokenizers and numpy (onnx/requirements-export.txt).
"""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tokenizers

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "onnx/fetched/all-MiniLM-L6-v2-int8/model.onnx"
TOKENIZER = ROOT / "onnx/fetched/all-MiniLM-L6-v2-int8/tokenizer.json"
OUT = ROOT / "onnx/reference/all-MiniLM-L6-v2-int8.json"
MAX_TOKENS = 256

TEXTS = [
    "hello",
    "What is the integral of x^2 from 0 to 3?",
    "Is it legal to break a lease early in California?",
    "Le café est très bon à Zürich; 東京 is the capital of Japan.",
    # longer than MAX_TOKENS: checks truncation
    " ".join(["The quick brown fox jumps over the lazy dog near the riverbank."] * 40),
]


def main() -> None:
    tok = tokenizers.Tokenizer.from_file(str(TOKENIZER))
    tok.no_padding()
    tok.enable_truncation(MAX_TOKENS)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(MODEL), options, providers=["CPUExecutionProvider"])
    records = []
    for text in TEXTS:
        enc = tok.encode(text)
        ids = np.array([enc.ids], dtype=np.int64)
        mask = np.ones_like(ids)
        hidden = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0][0]
        mean = hidden.mean(axis=0)
        records.append({
            "text": text,
            "ids": enc.ids,
            "embedding": (mean / np.linalg.norm(mean)).tolist(),
        })
        print(f"{len(enc.ids):4d} tokens  {text[:50]!r}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "generated_by": "python onnx/reference_minilm.py",
        "onnxruntime": ort.__version__,
        "max_tokens": MAX_TOKENS,
        "pooling": "mean, L2-normalised",
        "texts": records,
    }, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
