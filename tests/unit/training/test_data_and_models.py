"""Bad datasets and model folders fail before training with the file, line or folder named."""

from __future__ import annotations

import json

import pytest

from airflow_provider_llmops.exceptions import TrainingDataError, TrainingModelError
from airflow_provider_llmops.training.data import SampleOrder, read_rows
from airflow_provider_llmops.training.models import check_model_folder, is_causal_lm_config
from airflow_provider_llmops.training.spec import DataSpec


def _write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return str(path)


def test_prompt_response_and_text_rows(tmp_path):
    path = _write(tmp_path / "d.jsonl", [{"prompt": "p", "response": "r"}, {"text": "t"}, ""])
    rows = read_rows(DataSpec(path=path), "causal_lm")
    assert [(r.a, r.b) for r in rows] == [("p", "r"), ("t", None)]


def test_missing_dataset_file(tmp_path):
    with pytest.raises(TrainingDataError, match="does not exist"):
        read_rows(DataSpec(path=str(tmp_path / "none.jsonl")), "causal_lm")


def test_dataset_path_is_a_directory(tmp_path):
    with pytest.raises(TrainingDataError, match="it is a directory"):
        read_rows(DataSpec(path=str(tmp_path)), "causal_lm")


def test_row_missing_response_names_file_and_line(tmp_path):
    path = _write(tmp_path / "d.jsonl", [{"prompt": "p", "response": "r"}, {"prompt": "p2"}])
    with pytest.raises(
        TrainingDataError, match=r"d\.jsonl:2: field 'response' must be a non-empty string \(missing\)"
    ) as err:
        read_rows(DataSpec(path=path), "causal_lm")
    assert (err.value.path, err.value.line) == (path, 2)


def test_row_with_neither_prompt_nor_text(tmp_path):
    path = _write(tmp_path / "d.jsonl", [{"question": "q"}])
    with pytest.raises(TrainingDataError, match=r":1: field 'prompt'"):
        read_rows(DataSpec(path=path), "causal_lm")


def test_embedding_row_missing_positive(tmp_path):
    path = _write(
        tmp_path / "d.jsonl",
        [{"query": "q", "positive": "p"}, {"query": "q", "positive": "p"}, {"query": "q"}],
    )
    with pytest.raises(TrainingDataError, match=r":3: field 'positive'"):
        read_rows(DataSpec(path=path), "embedding")


def test_empty_string_field_refused(tmp_path):
    path = _write(tmp_path / "d.jsonl", [{"query": "q", "positive": "  "}])
    with pytest.raises(TrainingDataError, match=r":1: field 'positive'"):
        read_rows(DataSpec(path=path), "embedding")


def test_bad_json_line(tmp_path):
    path = _write(tmp_path / "d.jsonl", [{"text": "ok"}, "{broken"])
    with pytest.raises(TrainingDataError, match=r":2: not valid JSON"):
        read_rows(DataSpec(path=path), "causal_lm")


def test_non_object_line(tmp_path):
    path = _write(tmp_path / "d.jsonl", ["[1, 2]"])
    with pytest.raises(TrainingDataError, match=r":1: each line must be a JSON object"):
        read_rows(DataSpec(path=path), "causal_lm")


def test_empty_dataset(tmp_path):
    path = _write(tmp_path / "d.jsonl", [""])
    with pytest.raises(TrainingDataError, match="has no rows"):
        read_rows(DataSpec(path=path), "causal_lm")


def test_sample_order_is_a_function_of_the_index():
    a, b = SampleOrder(10, seed=1), SampleOrder(10, seed=1)
    first = a.indices(0, 25)
    assert sorted(first[:10]) == list(range(10))  # each epoch is a permutation
    assert b.indices(13, 12) == first[13:]  # a resumed reader continues the same order
    assert SampleOrder(10, seed=2).indices(0, 10) != first[:10]


def _model(tmp_path, config, tokenizer=True):
    folder = tmp_path / "m"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    if tokenizer:
        (folder / "tokenizer.json").write_text("{}")
    return str(folder)


def test_missing_model_folder(tmp_path):
    with pytest.raises(TrainingModelError, match="does not exist"):
        check_model_folder(str(tmp_path / "none"), "causal_lm")


def test_model_folder_without_config(tmp_path):
    with pytest.raises(TrainingModelError, match=r"no config\.json"):
        check_model_folder(str(tmp_path), "causal_lm")


def test_model_folder_without_tokenizer(tmp_path):
    path = _model(tmp_path, {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}, tokenizer=False)
    with pytest.raises(TrainingModelError, match="no tokenizer"):
        check_model_folder(path, "causal_lm")


def test_encoder_refused_for_causal_lm(tmp_path):
    path = _model(tmp_path, {"model_type": "bert", "architectures": ["BertModel"]})
    with pytest.raises(TrainingModelError, match="is not a causal LM"):
        check_model_folder(path, "causal_lm")


def test_causal_lm_refused_for_embedding(tmp_path):
    path = _model(tmp_path, {"model_type": "llama", "architectures": ["LlamaForCausalLM"]})
    with pytest.raises(TrainingModelError, match="not an encoder"):
        check_model_folder(path, "embedding")


def test_fitting_folders_accepted(tmp_path):
    assert check_model_folder(
        _model(tmp_path, {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}), "causal_lm"
    )
    assert check_model_folder(
        _model(tmp_path, {"model_type": "bert", "architectures": ["BertModel"]}), "embedding"
    )


def test_causal_detection_without_architectures():
    assert is_causal_lm_config({"model_type": "gpt2"})
    assert not is_causal_lm_config({"model_type": "t5", "is_encoder_decoder": True})
