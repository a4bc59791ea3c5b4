"""Redaction of secrets and URL userinfo."""

from __future__ import annotations

from airflow_provider_llmops.hooks.dvc import strip_userinfo


def teststrip_userinfo():
    assert strip_userinfo("https://bob:hunter2@git.example/x.git") == "https://***@git.example/x.git"
    assert strip_userinfo("/srv/x") == "/srv/x"


def test_short_or_empty_values_are_not_registered_as_secrets(capfd, caplog):
    """Airflow would refuse them with a warning per value ("too short"): they are skipped first."""
    from airflow_provider_llmops.utils.redact import mask_secrets, redact

    assert mask_secrets(["", None, "pw1", "abcd", "a-long-secret-value"]) == ["a-long-secret-value"]
    captured = capfd.readouterr()
    assert "too short" not in captured.out + captured.err + caplog.text
    assert redact("user pw1 and a-long-secret-value", ["pw1", "a-long-secret-value"]) == "user *** and ***"
