"""Redaction of secrets and URL userinfo."""

from __future__ import annotations

from airflow_provider_llmops.hooks.dvc import strip_userinfo


def teststrip_userinfo():
    assert strip_userinfo("https://bob:hunter2@git.example/x.git") == "https://***@git.example/x.git"
    assert strip_userinfo("/srv/x") == "/srv/x"
