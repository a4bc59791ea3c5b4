"""Parsing `git status --porcelain -z` exactly: no trimmed first letters, no quoting."""

from __future__ import annotations

from airflow_provider_llmops.utils.dvc_publish import dirty_paths


def test_dirty_paths_keep_every_character():
    out = " M README.md\0?? data/set.dvc\0 M data/.gitignore\0"
    assert dirty_paths(out) == ["README.md", "data/set.dvc", "data/.gitignore"]


def test_dirty_paths_of_renames_spaces_quotes_and_non_ascii():
    out = 'R  new name.txt\0old "name".txt\0?? data/données/a b.txt\0'
    assert dirty_paths(out) == ["new name.txt", 'old "name".txt', "data/données/a b.txt"]
    assert dirty_paths("") == []
