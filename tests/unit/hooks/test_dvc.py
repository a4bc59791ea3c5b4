"""DvcHook's connection handling without a repository: secrets, redaction, missing repo."""

from __future__ import annotations

import json

import pytest

from airflow_provider_llmops.hooks.dvc import DvcHook


def test_hook_redacts_connection_secrets(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DVC_UNIT",
        json.dumps(
            {
                "conn_type": "llmops_dvc",
                "login": "AKIAUNIT",
                "password": "s3cr3t-unit-password",
                "extra": {
                    "repo": "https://bob:tok-in-url@git.example/ds.git",
                    "remote_config": {"session_token": "sess-token-value"},
                },
            }
        ),
    )
    hook = DvcHook("dvc_unit")
    text = "s3cr3t-unit-password sess-token-value tok-in-url"
    assert hook.redact(text) == "*** *** ***"
    assert "tok-in-url" not in hook.repo_label
    assert hook.repo_name == "ds"


def test_hook_treats_url_username_without_password_as_token(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_DVC_TOKEN",
        json.dumps({"conn_type": "llmops_dvc", "extra": {"repo": "https://ghp_tok3n@git.example/ds.git"}}),
    )
    hook = DvcHook("dvc_token")
    assert "ghp_tok3n" not in hook.repo_label
    text = "fatal: unable to access 'https://ghp_tok3n@git.example/ds.git/': ghp_tok3n"
    assert "ghp_tok3n" not in hook.redact(text)
    # Any other URL with userinfo in a message loses it too.
    assert hook.redact("see https://u:p@other.example/x") == "see https://***@other.example/x"


def test_hook_without_repo_names_the_fix(monkeypatch):
    from airflow_provider_llmops.exceptions import DvcError

    monkeypatch.setenv("AIRFLOW_CONN_DVC_EMPTY", json.dumps({"conn_type": "llmops_dvc", "extra": {}}))
    with pytest.raises(
        DvcError, match=r"set Repository \(the `repo` extra, or Host\) of connection 'dvc_empty'"
    ):
        _ = DvcHook("dvc_empty").settings


def test_repository_from_the_forms_host_field_and_remote_settings_as_lines(monkeypatch):
    """What the connection form saves: Repository in Host, remote settings one key=value per line."""
    conn = {
        "conn_type": "llmops_dvc",
        "host": "https://git.example/acme/datasets.git",
        "extra": {"remote_config": ["region=eu-west-1", "", "endpointurl = https://minio:9000"]},
    }
    monkeypatch.setenv("AIRFLOW_CONN_DVC_FORM", json.dumps(conn))
    settings = DvcHook("dvc_form").settings
    assert settings.repo == "https://git.example/acme/datasets.git"
    assert settings.remote_config == {"region": "eu-west-1", "endpointurl": "https://minio:9000"}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('{"region": "eu-west-1"}', {"region": "eu-west-1"}),
        ("region=eu-west-1\n# a comment\nssl_verify=false", {"region": "eu-west-1", "ssl_verify": "false"}),
        ({"region": "x"}, {"region": "x"}),
        (None, {}),
    ],
)
def test_remote_config_forms(value, expected):
    from airflow_provider_llmops.hooks.dvc import _remote_config

    assert _remote_config(value, "c") == expected


def test_remote_config_line_without_equals_names_the_format():
    from airflow_provider_llmops.exceptions import DvcError
    from airflow_provider_llmops.hooks.dvc import _remote_config

    with pytest.raises(DvcError, match="is not key=value"):
        _remote_config(["region eu-west-1"], "c")
