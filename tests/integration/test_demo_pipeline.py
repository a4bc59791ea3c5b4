"""The repository's demo data pipeline (dvc.yaml + params.yaml) reproduces with real DVC."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(argv: list[str], cwd: Path, env: dict[str, str]) -> str:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, f"{argv} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def test_dvc_repro_builds_the_demo_dataset(tmp_path, dvc_env):
    project = tmp_path / "pipeline"
    project.mkdir()
    for name in ("dvc.yaml", "params.yaml"):
        shutil.copy(REPO_ROOT / name, project / name)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO_ROOT),
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
    }
    _run(["git", "init", "-q", "-b", "main"], project, env)
    _run([sys.executable, "-m", "dvc", "init", "-q"], project, env)
    _run([sys.executable, "-m", "dvc", "repro"], project, env)

    rows = [json.loads(line) for line in (project / "data/train/train.jsonl").read_text().splitlines()]
    assert len(rows) == 25  # version 2: 20 base records + 5
    assert (project / "dvc.lock").exists()
    # The end-to-end pipeline's datasets: corpus, training pairs, held-out judgments.
    llmops = project / "data/llmops"
    corpus = _rows(llmops / "corpus/corpus.jsonl")
    pairs = _rows(llmops / "train/pairs.jsonl")
    judgments = _rows(llmops / "eval/judgments.jsonl")
    assert len(pairs) == 1440 and len(judgments) == 300 and len(corpus) >= 1740
    ids = {d["id"] for d in corpus}
    assert len(ids) == len(corpus)
    assert all(next(iter(j["relevant"])) in ids for j in judgments)  # every answer is indexed
    # Held-out queries come from modules no training pair comes from.
    train_modules = {p["id"].split(".")[0] for p in pairs}
    assert not train_modules & {j["module"] for j in judgments}
    assert all(p["positive"].startswith(p["id"] + ": ") and p["query"] not in p["positive"] for p in pairs)

    # A second repro with unchanged params does nothing; a forced one writes the same bytes.
    assert "didn't change" in _run([sys.executable, "-m", "dvc", "repro"], project, env)
    lock = (project / "dvc.lock").read_text()
    _run([sys.executable, "-m", "dvc", "repro", "--force"], project, env)
    assert (project / "dvc.lock").read_text() == lock


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]
