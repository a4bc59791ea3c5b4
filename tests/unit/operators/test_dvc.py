"""DVC operators without a repository: template fields, lineage, validation, credentials in `repo`."""

from __future__ import annotations

import pytest

from airflow_provider_llmops.operators.dvc import (
    DvcAddOperator,
    DvcDatasetReviewOperator,
    DvcPullOperator,
    DvcPushOperator,
)
from airflow_provider_llmops.sensors.dvc import DvcUpdateSensor
from airflow_provider_llmops.triggers.dvc import DvcUpdateTrigger
from tests.unit.dvc_support import TOKEN_URLS, operators_with_repo, scripted_polls


@pytest.mark.parametrize(
    ("op", "fields"),
    [
        (DvcPullOperator, {"path", "local_path", "rev", "branch", "repo"}),
        (DvcAddOperator, {"path", "tag", "message", "repo"}),
        (DvcPushOperator, {"path", "repo"}),
        (
            DvcDatasetReviewOperator,
            {"path", "new_rev", "old_rev", "output_dir", "data_dir", "branch", "repo"},
        ),
        (DvcUpdateSensor, {"path", "rev", "tag_pattern", "since_md5", "repo"}),
    ],
)
def test_template_fields(op, fields):
    assert set(op.template_fields) == fields


def test_pull_asset_declared_at_parse_time_from_repo():
    op = DvcPullOperator(
        task_id="p", path="data/train", local_path="/tmp/x", repo="https://github.com/org/datasets.git"
    )
    assert op.asset is not None
    assert op.asset.uri == "dvc://datasets/data/train"
    assert op.asset in op.outlets


def test_project_from_the_connection_is_named_at_run_time():
    """One dataset, one URI: without `repo` the Asset is named after the connection's repo, at run time."""
    from airflow.sdk import DAG, AssetAlias

    with DAG("d", schedule=None):
        op = DvcPullOperator(task_id="p", path="data/train/", local_path="/tmp/x", dvc_conn_id="my_ds")
    assert op.asset is None
    assert op.outlets == [AssetAlias("dvc:d:p")]


@pytest.mark.parametrize(
    ("path", "uri"),
    [
        ("data/données", "dvc://datasets/data/donn%C3%A9es"),
        ("data/a b/c", "dvc://datasets/data/a%20b/c"),
        ("data/train", "dvc://datasets/data/train"),
    ],
)
def test_non_ascii_paths_give_valid_stable_uris(path, uri):
    op = DvcPullOperator(task_id="p", path=path, local_path="/tmp/x", repo="/srv/datasets")
    assert op.asset is not None and op.asset.uri == uri


def test_no_asset_is_built_when_none_is_emitted():
    op = DvcPullOperator(
        task_id="p", path="data/données", local_path="/tmp/x", repo="/srv/ds", emit_asset=False
    )
    assert op.asset is None and op.asset_alias is None and op.outlets == []


def test_either_repo_or_a_connection_is_needed():
    with pytest.raises(ValueError, match=r"repo=.*or dvc_conn_id"):
        DvcPullOperator(task_id="p", path="data", local_path="/tmp/x", dvc_conn_id=None)


def test_templated_path_declares_an_asset_alias():
    from airflow.sdk import DAG, AssetAlias

    with DAG("d", schedule=None):
        op = DvcPullOperator(task_id="p", path="data/{{ params.split }}", local_path="/tmp/x")
        review = DvcDatasetReviewOperator(task_id="r", path="data/train", repo="{{ params.repo }}")
    assert op.asset is None
    assert op.asset_alias == AssetAlias("dvc:d:p")
    assert op.outlets == [op.asset_alias]
    assert review.asset is None
    assert review.outlets == [AssetAlias("dvc-review:d:r")]


def test_emit_asset_false_declares_nothing():
    op = DvcPullOperator(task_id="p", path="data/{{ x }}", local_path="/tmp/x", emit_asset=False)
    assert op.asset is None and op.asset_alias is None and op.outlets == []


def test_operators_share_one_base_operator():
    """One base owns the shared arguments, validation and lineage; its template fields come first."""
    from airflow.sdk import BaseOperator

    from airflow_provider_llmops.operators.dvc import DvcBaseOperator, dvc_template_fields

    for op in (DvcPullOperator, DvcAddOperator, DvcPushOperator, DvcDatasetReviewOperator):
        assert op.__mro__[1] is DvcBaseOperator and issubclass(op, BaseOperator), op
        assert tuple(op.template_fields[:2]) == ("path", "repo")
    assert dvc_template_fields("rev", "path") == ("path", "repo", "rev")


def test_parsing_operators_does_not_import_hook_or_trigger():
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import airflow_provider_llmops.operators.dvc, airflow_provider_llmops.sensors.dvc\n"
        "print(sorted(m for m in sys.modules if m.endswith(('hooks.dvc', 'triggers.dvc'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_review_asset_uri():
    op = DvcDatasetReviewOperator(task_id="r", path="data/train", repo="/srv/datasets")
    assert op.asset is not None
    assert op.asset.uri == "dvc-review://datasets/data/train"


def _operator(cls, **kwargs):
    """One factory per operator under test: the required arguments, overridden by `kwargs`."""
    required = {
        DvcPullOperator: {"path": "data", "local_path": "/tmp/x"},
        DvcAddOperator: {"path": "data", "tag": "v1"},
        DvcPushOperator: {},
        DvcDatasetReviewOperator: {"path": "data"},
    }[cls]
    return cls(task_id="t", **{**required, **kwargs})


@pytest.mark.parametrize(
    ("cls", "bad", "match"),
    [
        (DvcPullOperator, {"path": ""}, "path must be a non-empty string"),
        (DvcPullOperator, {"path": "/etc/passwd"}, "relative to the DVC project root"),
        (DvcPullOperator, {"path": "../other/data"}, "relative to the DVC project root"),
        (DvcPullOperator, {"local_path": ""}, "local_path"),
        (DvcPullOperator, {"rev": " "}, "rev"),
        (DvcPullOperator, {"branch": ""}, "branch"),
        (DvcAddOperator, {"tag": ""}, "tag"),
        (DvcAddOperator, {"message": ""}, "message"),
        (DvcPushOperator, {"path": ""}, "path"),
        (DvcDatasetReviewOperator, {"old_rev": ""}, "old_rev"),
        (DvcDatasetReviewOperator, {"new_rev": 3}, "new_rev"),
        (DvcDatasetReviewOperator, {"output_dir": ""}, "output_dir"),
    ],
)
def test_operators_reject_bad_arguments(cls, bad, match):
    with pytest.raises(ValueError, match=match):
        _operator(cls, **bad)


@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [
        (DvcPullOperator, "local_path", ""),
        (DvcPullOperator, "rev", " "),
        (DvcAddOperator, "tag", ""),
        (DvcDatasetReviewOperator, "data_dir", ""),
    ],
)
def test_operators_check_every_rendered_field(cls, field, value):
    """Templated fields are checked once rendered too (a Param may hold anything)."""
    op = _operator(cls, **{field: "{{ params.value }}"})
    with pytest.raises(ValueError, match=field):
        op.render_template_fields({"params": {"value": value}})


@pytest.mark.parametrize("url", TOKEN_URLS)
def test_repo_with_credentials_is_refused_at_parse_time(url):
    secret = url.split("://", 1)[1].split("@", 1)[0]
    for make in operators_with_repo(url):
        with pytest.raises(ValueError, match="put the user/token in the llmops_dvc connection") as err:
            make()
        assert secret not in str(err.value)
    with pytest.raises(ValueError, match="must not carry credentials"):
        DvcUpdateTrigger(path="data", since_md5=None, repo=url)


@pytest.mark.parametrize(
    "url",
    [
        "https://github.com/org/datasets.git",
        "git@github.com:org/datasets.git",
        "ssh://git@github.com/org/datasets.git",
        "/srv/data/project",
        "file:///srv/data/origin.git",
        None,
    ],
)
def test_repo_without_credentials_is_accepted(url):
    for make in operators_with_repo(url):
        make()


@pytest.mark.parametrize("url", TOKEN_URLS[:2])
def test_templated_repo_is_checked_once_rendered(monkeypatch, url):
    """A Param can bring a token in at run time: rendering refuses it before any git/DVC call."""
    import airflow_provider_llmops.hooks.dvc as hook_module

    def no_hook(*args, **kwargs):
        raise AssertionError("the hook must not be built for a repo with credentials")

    monkeypatch.setattr(hook_module, "DvcHook", no_hook)
    scripted_polls(monkeypatch, [None])
    secret = url.split("://", 1)[1].split("@", 1)[0]
    for make in operators_with_repo("{{ params.repo }}"):
        op = make()  # templated: not checked at parse time
        with pytest.raises(ValueError, match="must not carry credentials") as err:
            op.render_template_fields({"params": {"repo": url}})
        assert secret not in str(err.value)
