"""Lineage names of DVC datasets."""

from __future__ import annotations

import pytest

from airflow_provider_llmops.assets.dvc import repo_name


@pytest.mark.parametrize(
    ("repo", "name"),
    [
        ("https://github.com/org/datasets.git", "datasets"),
        ("git@github.com:org/datasets.git", "datasets"),
        ("/srv/data/project/", "project"),
        ("host:datasets", "datasets"),
        ("/srv/données/projet à deux", "projet à deux"),
    ],
)
def test_repo_name(repo, name):
    assert repo_name(repo) == name
