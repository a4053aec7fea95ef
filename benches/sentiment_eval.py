"""Sentiment: accuracy and throughput of `insights sentiment` next to its Python peers.

Runs on the VADER gold sets' test split (the same hash split as the Rust trainer):
  - Python transformers 4.44.2 + torch 2.4.0 running the same model: the published encoder
    with the fine-tuned tensors of models/sentiment-minilm/encoder.safetensors laid over it
    (when the card names them), and the same trained head (head.safetensors): accuracy,
    agreement with the Rust predictions, and throughput at batch 1 and 32 on the same CPU
    (beside `insights sentiment`'s, see below);
  - vaderSentiment 3.3.2 (thresholds ±0.05): accuracy, and agreement of our lexicon port;
  - `insights sentiment` (both backends): accuracy.

Usage: python benches/sentiment_eval.py --insights target/release/insights [--sentences 512]
(benches/run.sh installs the venv this needs: .tools/sentiment-venv).

Throughput: Python in f32, bf16 and int8 at batch 1 and 32, and `insights sentiment` on the
same --sentences (its wall time less a one-sentence run's, so start-up is out), each
Python run followed by the insights run it is compared with, --repeats rounds, medians and
the ratios the issue names. With --throughput-only no labels are read (not a look at the
test split).
"""

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time

SETS = [
    ("tweets", "tweets_GroundTruth.txt"),
    ("movies", "movieReviewSnippets_GroundTruth.txt"),
    ("amazon", "amazonReviewSnippets_GroundTruth.txt"),
    ("nyt", "nytEditorialSnippets_GroundTruth.txt"),
]
LABELS = ["negative", "neutral", "positive"]


def label_for(rating):
    return "negative" if rating < -0.5 else "positive" if rating > 0.5 else "neutral"


def split_of(set_name, ident):
    d = hashlib.sha256(f"{set_name}/{ident}".encode()).digest()
    n = int.from_bytes(d[:2], "big") % 10
    return "test" if n == 0 else "validation" if n == 1 else "train"


def load_test(data_dir):
    rows = []
    for set_name, file in SETS:
        with open(os.path.join(data_dir, file), "rb") as f:
            text = f.read().decode("utf-8", errors="replace")
        for line in text.splitlines():
            line = line.rstrip("\r")
            if not line.strip():
                continue
            ident, rating, sentence = line.split("\t", 2)
            if split_of(set_name, ident) == "test":
                rows.append((set_name, sentence.strip(), label_for(float(rating))))
    return rows


def accuracy(pred, rows, set_name=None):
    pairs = [(p, r[2]) for p, r in zip(pred, rows) if set_name in (None, r[0])]
    return sum(p == g for p, g in pairs) / len(pairs)


def run_insights_scored(binary, texts, backend, batch, precision="auto", language="en"):
    """`insights sentiment`'s answer for each text: label, score and the class scores.
    The texts are declared `language` (the VADER sets are English; None: undeclared)."""
    lines = "".join(json.dumps({"text": t} if language is None else {"text": t, "language": language})
                    + "\n" for t in texts)
    out = subprocess.run(
        [binary, "sentiment", "--sentiment-backend", backend, "--batch-size", str(batch),
         "--sentiment-precision", precision],
        input=lines.encode(), capture_output=True, check=True,
    )
    return [json.loads(l) for l in out.stdout.decode().splitlines()]


def run_insights(binary, texts, backend, batch, precision="auto"):
    return [r["label"] for r in run_insights_scored(binary, texts, backend, batch, precision)]


def predict_all(texts, py_predict, encoder=None):
    """Python's labels for every text, in batches of 32."""
    out = []
    for i in range(0, len(texts), 32):
        batch = texts[i:i + 32]
        out += [LABELS[k] for k in (py_predict(batch) if encoder is None else py_predict(batch, encoder))]
    return out


def measure_accuracy(args, rows, texts, py_predict, result):
    """Accuracy per set of Python, VADER and insights on the test split, and agreement."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    py = predict_all(texts, py_predict)

    # --- VADER itself -------------------------------------------------------------------
    vader = SentimentIntensityAnalyzer()
    vader_compound = [vader.polarity_scores(t)["compound"] for t in texts]
    vader_pred = ["positive" if c >= 0.05 else "negative" if c <= -0.05 else "neutral"
                  for c in vader_compound]

    # --- ours -----------------------------------------------------------------------------
    ours = run_insights(args.insights, texts, "transformer", 32)
    ours_f32 = run_insights(args.insights, texts, "transformer", 32, "f32")
    ours_int8 = run_insights(args.insights, texts, "transformer", 32, "int8")
    ours_lex = run_insights(args.insights, texts, "lexicon", 32)

    result["accuracy"] = {
        s: {
            "insights_transformer": accuracy(ours, rows, s),
            "insights_transformer_f32": accuracy(ours_f32, rows, s),
            "insights_transformer_int8": accuracy(ours_int8, rows, s),
            "python_same_model": accuracy(py, rows, s),
            "insights_lexicon": accuracy(ours_lex, rows, s),
            "vader_3_3_2": accuracy(vader_pred, rows, s),
        }
        for s in [None, "tweets", "movies", "amazon", "nyt"]
    }
    result["accuracy"]["all"] = result["accuracy"].pop(None)
    result["agreement"] = {
        "transformer_rust_vs_python": sum(a == b for a, b in zip(ours, py)) / len(py),
        "transformer_rust_f32_vs_python": sum(a == b for a, b in zip(ours_f32, py)) / len(py),
        "transformer_rust_int8_vs_f32": sum(a == b for a, b in zip(ours_int8, ours_f32)) / len(py),
        "lexicon_port_vs_vader": sum(a == b for a, b in zip(ours_lex, vader_pred)) / len(py),
    }


def insights_rate(binary, sample, precision, batch):
    """`insights sentiment`'s sentences/s on `sample`, with a one-sentence run's time
    (start-up, model load) taken out."""
    start = time.perf_counter()
    run_insights(binary, sample[:1], "transformer", batch, precision)
    one = time.perf_counter() - start
    start = time.perf_counter()
    run_insights(binary, sample, "transformer", batch, precision)
    extra = time.perf_counter() - start - one
    # Too few sentences to outlast start-up's own variation: no figure.
    return (len(sample) - 1) / extra if extra > 0.05 else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--insights", required=True)
    ap.add_argument("--data", default=".tools/data/vader")
    ap.add_argument("--encoder", default=".tools/models/all-MiniLM-L6-v2")
    ap.add_argument("--model", default="models/sentiment-minilm")
    ap.add_argument("--sentences", type=int, default=512, help="for the throughput runs")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--throughput-only", action="store_true",
                    help="no accuracy (labels unread): Python and insights throughput only")
    args = ap.parse_args()

    import torch
    from safetensors.torch import load_file
    from transformers import AutoModel, AutoTokenizer

    rows = load_test(args.data)
    texts = [r[1] for r in rows]
    card = json.load(open(os.path.join(args.model, "model.json")))
    result = {"test_sentences": len(rows), "torch_threads": torch.get_num_threads()}

    # --- Python: the same encoder and head --------------------------------------------
    tok = AutoTokenizer.from_pretrained(args.encoder)

    def load_encoder():
        encoder = AutoModel.from_pretrained(args.encoder)
        fine_tuned = card.get("fine_tuned_encoder")
        if fine_tuned:
            # f16 on disk; load_state_dict copies into the f32 parameters.
            tensors = load_file(os.path.join(args.model, fine_tuned["file"]))
            missing, unexpected = encoder.load_state_dict(tensors, strict=False)
            assert not unexpected, f"unexpected tensors: {unexpected}"
            assert set(missing) <= {"embeddings.word_embeddings.weight",
                                    "embeddings.position_ids", "pooler.dense.weight",
                                    "pooler.dense.bias"}, f"missing tensors: {missing}"
        return encoder.eval()

    enc = load_encoder()
    head = load_file(os.path.join(args.model, "head.safetensors"))

    def py_predict(batch, encoder=enc):
        with torch.inference_mode():
            t = tok(batch, padding=True, truncation=True, max_length=card["max_tokens"],
                    return_tensors="pt")
            h = encoder(**t).last_hidden_state.float()
            m = t["attention_mask"].unsqueeze(-1).float()
            e = (h * m).sum(1) / m.sum(1).clamp(min=1e-9)
            e = torch.nn.functional.normalize(e, dim=1)
            if card["hidden"] > 0:
                e = torch.relu(e @ head["hidden.weight"].T + head["hidden.bias"])
            logits = e @ head["out.weight"].T + head["out.bias"]
            return (logits / card["temperature"]).softmax(-1).argmax(-1).tolist()

    if not args.throughput_only:
        measure_accuracy(args, rows, texts, py_predict, result)

    # The same trick ours uses where the CPU has native bf16: the encoder in bfloat16, the
    # pooled embedding back to f32 for the head.
    enc_bf16 = load_encoder().to(torch.bfloat16)
    # Like for like with our int8: PyTorch's dynamic quantization of every linear layer.
    enc_int8 = torch.ao.quantization.quantize_dynamic(load_encoder(), {torch.nn.Linear},
                                                      dtype=torch.qint8)
    if not args.throughput_only:
        result["accuracy"]["all"]["python_same_model_bf16"] = accuracy(
            predict_all(texts, py_predict, enc_bf16), rows)
        result["accuracy"]["all"]["python_same_model_int8"] = accuracy(
            predict_all(texts, py_predict, enc_int8), rows)

    # --- throughput: batch 1 and 32, Python and insights interleaved, medians ----------------
    sample = texts[: args.sentences]
    encoders = {"f32": enc, "bf16": enc_bf16, "int8": enc_int8}
    for encoder in encoders.values():
        py_predict(sample[:32], encoder)  # warm-up
    runs = {}
    for _ in range(args.repeats):
        for precision, encoder in encoders.items():
            for batch in (1, 32):
                start = time.perf_counter()
                for i in range(0, len(sample), batch):
                    py_predict(sample[i:i + batch], encoder)
                runs.setdefault(("python", precision, batch), []).append(
                    len(sample) / (time.perf_counter() - start))
                runs.setdefault(("insights", precision, batch), []).append(
                    insights_rate(args.insights, sample, precision, batch))
    for (who, precision, batch), rates in runs.items():
        name = f"{who}_{precision}"
        result[f"{name}_sentences_per_s_batch{batch}"] = statistics.median(rates)
        result[f"{name}_runs_batch{batch}"] = [round(r, 1) for r in rates]
    for precision in encoders:
        for batch in (1, 32):
            ours = result[f"insights_{precision}_sentences_per_s_batch{batch}"]
            for peer in {precision, "f32"}:
                result[f"insights_{precision}_vs_python_{peer}_batch{batch}"] = (
                    ours / result[f"python_{peer}_sentences_per_s_batch{batch}"])
    json.dump(result, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
