"""The DVC operators' and sensor's argument checks (string tests, no regular expressions)."""

from __future__ import annotations

import pytest

from airflow_provider_llmops.utils.dvc_checks import check_path, check_repo


@pytest.mark.parametrize(
    "path", ["data/train", "data/a b/c", "data/données", "a:b/c", "é:/x", "data/..x", "x"]
)
def test_relative_paths_pass(path):
    check_path(path)


@pytest.mark.parametrize(
    "path", ["/etc/data", "\\share\\x", "C:/data", "c:\\data", "../x", "data/../../x", "data\\..\\x", ".."]
)
def test_absolute_or_escaping_paths_refused(path):
    with pytest.raises(ValueError, match="relative to the DVC project root"):
        check_path(path)


@pytest.mark.parametrize(
    "repo", ["/srv/ds", "https://github.com/acme/ds.git", "git@github.com:acme/ds.git", "ssh://git@host/ds"]
)
def test_repos_without_credentials_pass(repo):
    check_repo(repo)


@pytest.mark.parametrize("repo", ["https://s3cr3t@github.com/acme/ds.git", "https://alice:s3cr3t@host/ds"])
def test_credentials_in_the_url_refused(repo):
    with pytest.raises(ValueError, match="must not carry credentials") as err:
        check_repo(repo)
    assert "s3cr3t" not in str(err.value) and "alice" not in str(err.value)
