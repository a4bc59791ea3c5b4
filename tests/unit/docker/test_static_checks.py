"""docker/ passes hadolint and `docker compose config`, and both tools really check (no engine needed)."""

from __future__ import annotations

import subprocess

import pytest

from dev import docker_checks
from dev.docker_checks import COMPOSE, DOCKERFILES, HADOLINT, compose_config, ensure_tool, hadolint


def test_every_image_is_linted():
    assert {p.name for p in DOCKERFILES} == {"airflow.Dockerfile", "trainer.Dockerfile", "triton.Dockerfile"}


def test_dockerfiles_pass_hadolint():
    done = hadolint()
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_reports_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN cd /tmp && apt-get install curl\n")
    done = hadolint([bad])
    assert done.returncode != 0
    for rule in ("DL3007", "DL3003", "DL3014"):  # :latest, cd in RUN, apt-get install without -y
        assert rule in done.stdout, done.stdout
    assert "DL3008" not in done.stdout  # unpinned apt packages: ignored by docker/.hadolint.yaml


def test_compose_file_is_valid(compose):
    assert set(compose["services"]) == {"airflow", "elasticsearch", "triton", "minio", "minio-init"}


def test_compose_config_rejects_an_invalid_file(tmp_path):
    bad = tmp_path / "compose.yaml"
    bad.write_text("services:\n  web:\n    image: busybox\n    ports: 8080\n    restart: sometimes\n")
    done = compose_config(bad)
    assert done.returncode != 0
    assert "ports" in done.stderr or "restart" in done.stderr, done.stderr


def test_compose_runs_as_the_docker_cli_plugin_when_there_is_a_client(monkeypatch):
    monkeypatch.setattr(docker_checks.shutil, "which", lambda name: "/usr/bin/docker")
    argv, env = docker_checks.compose_command()
    assert argv == ["/usr/bin/docker", "compose"]
    plugin = COMPOSE.home / "docker-config" / "cli-plugins" / "docker-compose"
    assert env["DOCKER_CONFIG"] == str(plugin.parent.parent)
    assert plugin.resolve() == COMPOSE.binary.resolve()


def test_compose_runs_standalone_without_a_docker_client(monkeypatch):
    monkeypatch.setattr(docker_checks.shutil, "which", lambda name: None)
    argv, _ = docker_checks.compose_command()
    assert argv == [str(COMPOSE.binary)]


@pytest.mark.parametrize("tool", [COMPOSE, HADOLINT], ids=lambda t: t.tool)
def test_installed_tool_is_the_pinned_version(tool):
    done = subprocess.run([str(ensure_tool(tool)), "--version"], capture_output=True, text=True, check=True)
    assert tool.version in done.stdout


@pytest.mark.parametrize("tool", [COMPOSE, HADOLINT], ids=lambda t: t.tool)
def test_cached_tool_is_not_downloaded_again(tool, monkeypatch):
    ensure_tool(tool)

    def no_download(*args, **kwargs):
        raise AssertionError("ensure_tool ran a subprocess although the binary is cached")

    monkeypatch.setattr(docker_checks.subprocess, "run", no_download)
    assert ensure_tool(tool) == tool.binary
