#!/usr/bin/env python3
"""Record reference token probabilities of the Rampart PII model, computed by Python onnxruntime.

semrouter's tests run the same texts through its Rust token classifier and compare: this checks
tokenisation, byte offsets (Python reports character offsets; they are converted here), the
dropping of special tokens and padding, and the softmax against an independent implementation
of the same model file.

    python onnx/reference_rampart.py    # after `make setup`; writes onnx/reference/rampart.json

Needs onnxruntime==1.31.1, tokenizers and numpy (onnx/requirements-export.txt).
"""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import tokenizers

ROOT = Path(__file__).resolve().parent.parent
DIR = ROOT / "onnx/fetched/rampart"
OUT = ROOT / "onnx/reference/rampart.json"

# Each fits one 480-byte window, so one forward pass over the whole text is the reference.
TEXTS = [
    "My name is Marie Hamanová and my email is MarieHamanova@armyspy.com, call me at (727) 538-7059.",
    "I live at 2071 Maryland Avenue, Apt 4B, Pinellas, FL 34624.",
    "Grüße aus Zürich: schreib an jürgen.müller@example.de 😀 oder ruf +41 44 668 18 00 an.",
    "nothing personal here",
]


def byte_offset(text: str, char_index: int) -> int:
    return len(text[:char_index].encode("utf-8"))


def main() -> None:
    labels = json.loads((DIR / "config.json").read_text())["id2label"]
    labels = [labels[str(i)] for i in range(len(labels))]
    tok = tokenizers.Tokenizer.from_file(str(DIR / "tokenizer.json"))
    tok.no_padding()
    tok.no_truncation()
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(DIR / "model_q4.onnx"), options, providers=["CPUExecutionProvider"])
    records = []
    for text in TEXTS:
        assert len(text.encode("utf-8")) <= 480, "the reference covers one window"
        enc = tok.encode(text)
        ids = np.array([enc.ids], dtype=np.int64)
        logits = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)})[0][0]
        probs = np.exp(logits - logits.max(axis=-1, keepdims=True))
        probs /= probs.sum(axis=-1, keepdims=True)
        tokens = []
        for i, ((start, end), special) in enumerate(zip(enc.offsets, enc.special_tokens_mask)):
            if special:
                continue
            tokens.append({
                "start": byte_offset(text, start),
                "end": byte_offset(text, end),
                "label": labels[int(probs[i].argmax())],
                "probabilities": [round(float(p), 7) for p in probs[i]],
            })
        records.append({"text": text, "tokens": tokens})
        print(f"{len(tokens):4d} tokens  {text[:50]!r}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({
        "generated_by": "python onnx/reference_rampart.py",
        "onnxruntime": ort.__version__,
        "labels": labels,
        "texts": records,
    }) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
