#!/usr/bin/env python3
"""Export ModernBERT encoders and sequence classifiers to ONNX for semrouter.

Two uses:

  hub   Export a Hugging Face checkpoint you can reach (ModernBERT-base, or a ModernBERT
        sequence-classification fine-tune such as the vLLM Semantic Router's category
        classifier) into a folder semrouter loads: model.onnx, tokenizer.json, config.json.

            python onnx/export_modernbert.py hub --model answerdotai/ModernBERT-base --out models/modernbert-base
            python onnx/export_modernbert.py hub --model ORG/category-classifier --task classification --out models/category

  tiny  Build a tiny randomly initialised ModernBERT and ModernBertForSequenceClassification
        with a tiny tokenizer trained here, export both, and record PyTorch's outputs as
        references. semrouter's tests run both through its real ONNX backend and match them.
        The results are committed (a few hundred KB), so tests need neither torch nor a hub.

            python onnx/export_modernbert.py tiny --out onnx/tiny

Needs: pip install -r onnx/requirements-export.txt (torch, transformers, onnx, onnxruntime).
Nothing is downloaded in `tiny` mode.
"""

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

OPSET = 17
SEED = 20261122

# The 14 MMLU-Pro categories semrouter routes on. The tiny classifier labels its logits with
# them in a shuffled order, so a test can tell labels read by name from labels read by position.
CATEGORIES = [
    "biology", "business", "chemistry", "computer science", "economics", "engineering", "health",
    "history", "law", "math", "other", "philosophy", "physics", "psychology",
]

# Corpus for the tiny tokenizer: enough text to learn a few hundred byte-level BPE merges.
TOKENIZER_CORPUS = [
    "What is the derivative of x squared plus three x?",
    "Explain how photosynthesis converts light into chemical energy in plant cells.",
    "Which court decides appeals about constitutional law in the United States?",
    "A company reports revenue, costs and profit in its quarterly financial statement.",
    "The patient presented with fever, cough and shortness of breath for three days.",
    "Write a function in Python that sorts a list of integers without using sort().",
    "Why is the sky blue? Rayleigh scattering affects shorter wavelengths more strongly.",
    "Hello there! How are you doing today? Tell me a joke about cats.",
    "In 1789 the French Revolution began with the storming of the Bastille.",
    "The electron configuration of carbon is 1s2 2s2 2p2, with four valence electrons.",
    "Supply and demand determine the market price when competition is perfect.",
    "Kant argued that moral duties follow from reason rather than from consequences.",
    "A bridge engineer computes the load each steel beam must carry safely.",
    "Cognitive behavioural therapy changes patterns of thought and behaviour.",
    "Newton's second law states that force equals mass times acceleration.",
    "Prove that the square root of two is irrational, step by step.",
    "résumé, naïve café, Zürich, 東京, Straße — unicode text must tokenise too.",
]

# Texts whose outputs are recorded: short and long (past the sliding-window size, so local
# attention is exercised), plain ASCII and multilingual.
REFERENCE_TEXTS = [
    "hello",
    "Why is the sky blue?",
    "Prove that there are infinitely many prime numbers, and explain each step of the argument carefully.",
    "Le café est très bon à Zürich; 東京 is the capital of Japan.",
    "A patient with chest pain and shortness of breath arrives at the emergency department at night; "
    "list the first examinations, the likely diagnoses and the treatment you would start while waiting.",
]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def build_tiny_tokenizer(out_dir: Path):
    """Trains a byte-level BPE tokenizer with ModernBERT's [CLS] text [SEP] template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(TOKENIZER_CORPUS * 4, trainer=trainer)
    ids = {s: tok.token_to_id(s) for s in specials}
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))
    return tok, ids


def tiny_config(vocab_size: int, ids: dict, **extra):
    from transformers import ModernBertConfig

    return ModernBertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=3,
        num_attention_heads=2,
        max_position_embeddings=512,
        local_attention=8,  # short window so reference texts cross it
        global_attn_every_n_layers=3,
        pad_token_id=ids["[PAD]"],
        bos_token_id=ids["[CLS]"],
        eos_token_id=ids["[SEP]"],
        cls_token_id=ids["[CLS]"],
        sep_token_id=ids["[SEP]"],
        attn_implementation="eager",
        reference_compile=False,
        **extra,
    )


class _Encoder(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class _Classifier(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask):
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export(model, task: str, path: Path, sample_ids, sample_mask) -> None:
    wrapper = (_Encoder if task == "embedding" else _Classifier)(model).eval()
    output = "last_hidden_state" if task == "embedding" else "logits"
    axes = {"input_ids": {0: "batch", 1: "sequence"}, "attention_mask": {0: "batch", 1: "sequence"}}
    axes[output] = {0: "batch", 1: "sequence"} if task == "embedding" else {0: "batch"}
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            (sample_ids, sample_mask),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=[output],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    print(f"  exported {path} ({path.stat().st_size / 1024:.0f} KiB)", flush=True)


def padded_batch(tok, texts, pad_id):
    encs = [tok.encode(t) for t in texts]
    width = max(len(e.ids) for e in encs)
    ids = torch.full((len(encs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encs), width), dtype=torch.long)
    for i, e in enumerate(encs):
        ids[i, : len(e.ids)] = torch.tensor(e.ids)
        mask[i, : len(e.ids)] = 1
    return encs, ids, mask


def check_onnx(path: Path, ids, mask, expected: np.ndarray) -> float:
    """Runs the exported file with onnxruntime and returns the largest difference from PyTorch."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    return float(np.abs(got - expected).max())


def tiny(out: Path) -> None:
    from transformers import ModernBertForSequenceClassification, ModernBertModel

    seed_everything(SEED)
    enc_dir, cls_dir = out / "modernbert", out / "modernbert-cls"
    print("[1/4] training the tiny tokenizer", flush=True)
    tok, ids = build_tiny_tokenizer(enc_dir)
    vocab = tok.get_vocab_size()

    print("[2/4] building and exporting the tiny encoder", flush=True)
    encoder = ModernBertModel(tiny_config(vocab, ids)).eval()
    encs, batch_ids, batch_mask = padded_batch(tok, REFERENCE_TEXTS, ids["[PAD]"])
    export(encoder, "embedding", enc_dir / "model.onnx", batch_ids, batch_mask)
    encoder.config.save_pretrained(enc_dir)

    print("[3/4] building and exporting the tiny classifier", flush=True)
    shuffled = CATEGORIES[:]
    random.Random(SEED).shuffle(shuffled)
    id2label = {i: name for i, name in enumerate(shuffled)}
    cfg = tiny_config(vocab, ids, num_labels=len(shuffled), id2label=id2label,
                      label2id={n: i for i, n in id2label.items()}, classifier_pooling="mean")
    classifier = ModernBertForSequenceClassification(cfg).eval()
    cls_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(enc_dir / "tokenizer.json", cls_dir / "tokenizer.json")
    export(classifier, "classification", cls_dir / "model.onnx", batch_ids, batch_mask)
    classifier.config.save_pretrained(cls_dir)

    print("[4/4] recording PyTorch reference outputs", flush=True)
    records = []
    with torch.no_grad():
        # Each text alone (no padding), so the reference is independent of batching.
        for text, enc in zip(REFERENCE_TEXTS, encs):
            one_ids = torch.tensor([enc.ids])
            one_mask = torch.ones_like(one_ids)
            hidden = encoder(input_ids=one_ids, attention_mask=one_mask).last_hidden_state[0]
            logits = classifier(input_ids=one_ids, attention_mask=one_mask).logits[0]
            records.append({
                "text": text,
                "ids": enc.ids,
                "mean": hidden.mean(dim=0).tolist(),
                "cls": hidden[0].tolist(),
                "logits": {id2label[i]: float(v) for i, v in enumerate(logits)},
            })
        hidden = encoder(input_ids=batch_ids, attention_mask=batch_mask).last_hidden_state.numpy()
        logits = classifier(input_ids=batch_ids, attention_mask=batch_mask).logits.numpy()
    diff_enc = check_onnx(enc_dir / "model.onnx", batch_ids, batch_mask, hidden)
    diff_cls = check_onnx(cls_dir / "model.onnx", batch_ids, batch_mask, logits)
    print(f"  onnxruntime vs PyTorch, padded batch: encoder max |diff| {diff_enc:.2e}, classifier {diff_cls:.2e}")
    if max(diff_enc, diff_cls) > 1e-4:
        sys.exit("exported models do not match PyTorch within 1e-4")
    reference = {
        "generated_by": "python onnx/export_modernbert.py tiny --out " + str(out),
        "torch": torch.__version__,
        "tolerance": 1e-4,
        "texts": records,
    }
    (out / "reference.json").write_text(json.dumps(reference, indent=1) + "\n")
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"done: {out} holds {total / 1024:.0f} KiB")


def hub(model_id: str, task: str, out: Path, revision) -> None:
    from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer

    print(f"[1/3] loading {model_id}", flush=True)
    config = AutoConfig.from_pretrained(model_id, revision=revision)
    config._attn_implementation = "eager"
    cls = AutoModel if task == "embedding" else AutoModelForSequenceClassification
    model = cls.from_pretrained(model_id, config=config, revision=revision).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_id, revision=revision)
    out.mkdir(parents=True, exist_ok=True)
    print("[2/3] exporting", flush=True)
    sample = tokenizer(["a short sample", "a somewhat longer sample sentence for tracing"], padding=True, return_tensors="pt")
    export(model, task, out / "model.onnx", sample["input_ids"], sample["attention_mask"])
    print("[3/3] writing tokenizer.json and config.json", flush=True)
    tokenizer.backend_tokenizer.save(str(out / "tokenizer.json"))
    model.config.save_pretrained(out)
    with torch.no_grad():
        expected = _Encoder(model)(**sample) if task == "embedding" else _Classifier(model)(**sample)
    diff = check_onnx(out / "model.onnx", sample["input_ids"], sample["attention_mask"], expected.numpy())
    print(f"done: {out} (onnxruntime vs PyTorch max |diff| {diff:.2e})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("tiny", help="build, export and record the tiny test models")
    t.add_argument("--out", type=Path, default=Path("onnx/tiny"))
    h = sub.add_parser("hub", help="export a Hugging Face checkpoint")
    h.add_argument("--model", required=True, help="hub id or local folder")
    h.add_argument("--task", choices=["embedding", "classification"], default="embedding")
    h.add_argument("--revision", default=None)
    h.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    if args.command == "tiny":
        tiny(args.out)
    else:
        hub(args.model, args.task, args.out, args.revision)


if __name__ == "__main__":
    main()
