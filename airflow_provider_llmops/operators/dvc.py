"""Thin operators over `DvcHook` and its managers: pull a dataset version, publish one, push data,
review a change.

Each operator declares the dataset Asset ``dvc://<repo-name>/<path>`` at parse time (repo-name:
the last component of `repo` without ``.git``, or the connection id when `repo` is not given)
and attaches the `DvcVersion` to the asset event at run time. When `path` or `repo` is templated,
or the task is mapped, the Asset is only known at run time: the operator then declares the
AssetAlias ``dvc:<dag_id>:<task_id>`` and adds the rendered Asset to it when it runs (see
`airflow_provider_llmops.assets.dvc`).

Without an explicit rev, `DvcPullOperator` and `DvcDatasetReviewOperator` use the last commit
on the branch at or before the run's logical date, so a backfill reproduces the data each date saw.

The hook is imported when a task runs only: parsing a DAG never loads the git/DVC plumbing, nor
anything else a task needs only once it runs (event emission, the review link, the last run's
XCom); each module here costs every DAG file that imports it a fraction of a millisecond.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from airflow_provider_llmops.assets.dvc import (
    DEFAULT_CONN_ID,
    DVC_REVIEW_SCHEME,
    DVC_SCHEME,
    dvc_alias,
    dvc_asset,
    dvc_review_asset,
)
from airflow_provider_llmops.utils.dvc_checks import check_dvc_fields
from airflow_provider_llmops.utils.templating import ValidateAfterRender, is_templated

if TYPE_CHECKING:
    from airflow.sdk import Asset, AssetAlias, BaseOperatorLink, Context
    from airflow.sdk.definitions.mappedoperator import OperatorPartial

    from airflow_provider_llmops.hooks.dvc import DvcHook
    from airflow_provider_llmops.utils.dvc_publish import DvcPublisher
    from airflow_provider_llmops.utils.dvc_pull import DvcPuller

__all__ = [
    "DvcAddOperator",
    "DvcBaseOperator",
    "DvcDatasetReviewOperator",
    "DvcPullOperator",
    "DvcPushOperator",
    "dvc_template_fields",
]


def dvc_template_fields(*fields: str) -> tuple[str, ...]:
    """The template fields every DVC operator has (``path``, ``repo``), then `fields`."""
    return tuple(dict.fromkeys(("path", "repo", *fields)))


def _work_root() -> Path:
    return Path(os.environ.get("LLMOPS_DVC_WORK_DIR") or Path(tempfile.gettempdir()) / "airflow-llmops-dvc")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "data"


class DvcBaseOperator(ValidateAfterRender, BaseOperator):
    """Base of the DVC operators: the shared arguments, the hook, one validation pass, lineage.

    Subclasses name their own string arguments in `REQUIRED_FIELDS` / `OPTIONAL_FIELDS`: they are
    checked when the operator is built and again once rendered, before Airflow stores the
    rendered fields (also for mapped tasks, which render through `_do_render_template_fields`).

    Example::

        class DvcTouchOperator(DvcBaseOperator):
            template_fields = dvc_template_fields("note")
            OPTIONAL_FIELDS = ("note",)

            def __init__(self, *, note: str | None = None, **kwargs):
                self.note = note
                super().__init__(**kwargs)

            def execute(self, context):
                version = self.hook.version(self.path)
                self.emit(context, version.asset_extra())

    :param path: tracked path inside the project (a folder or file with a ``.dvc`` file).
    :param dvc_conn_id: ``llmops_dvc`` connection (repo, rev, remote, credentials).
    :param repo: git URL or local path overriding the connection's ``repo`` extra, without
        credentials (``https://token@...`` is refused, at parse time or once rendered: a template
        field is stored unmasked; put them in the connection). With `repo` given, the
        connection is optional.
    :param subdir: the DVC project's folder inside the git repository (monorepos, ``dvc init
        --subdir``); overrides the connection's ``subdir`` extra. `path` is relative to it.
    :param emit_asset: attach the version to the event of the dataset's Asset
        ``dvc://<repo-name>/<path>``, the same URI however the task names the project. A literal
        `repo` declares the Asset at parse time; otherwise (the project from the connection, a
        templated field, a mapped task) the task declares the AssetAlias
        ``<scheme>:<dag_id>:<task_id>`` and adds the Asset to it when it runs.
    """

    ASSET_SCHEME: ClassVar[str] = DVC_SCHEME
    REQUIRED_FIELDS: ClassVar[tuple[str, ...]] = ()
    OPTIONAL_FIELDS: ClassVar[tuple[str, ...]] = ()  # besides `subdir`, checked for every operator
    PATH_REQUIRED: ClassVar[bool] = True

    template_fields: Sequence[str] = dvc_template_fields()
    ui_color = "#945dd6"

    def __init__(
        self,
        *,
        path: str | None = None,
        dvc_conn_id: str | None = DEFAULT_CONN_ID,
        repo: str | None = None,
        subdir: str | None = None,
        emit_asset: bool = True,
        **kwargs: Any,
    ) -> None:
        self.path = path
        self.repo = repo
        self.subdir = subdir
        self._validate(rendered=False)
        if not repo and not dvc_conn_id:
            raise ValueError(
                "Pass repo=... (git URL or local path) or dvc_conn_id=... (an llmops_dvc connection)"
            )
        mapped = bool(getattr(self, "_BaseOperator__from_mapped", False))
        asset: Asset | None = None
        if emit_asset and repo and not mapped and not is_templated(path, repo):
            asset = self._asset_for(repo, str(path))
            kwargs["outlets"] = [*(kwargs.pop("outlets", None) or []), asset]
        super().__init__(**kwargs)
        self.dvc_conn_id = dvc_conn_id
        self.emit_asset = emit_asset
        self.asset = asset
        self.asset_alias: AssetAlias | None = None
        if emit_asset and asset is None:
            self.asset_alias = self._declare_alias(self.outlets, self.dag_id, self.task_id)

    @classmethod
    def partial(cls, **kwargs: Any) -> OperatorPartial:  # type: ignore[override]
        """`BaseOperator.partial`, declaring the AssetAlias: a mapped task's Asset is known at run time only."""
        result = super().partial(**kwargs)
        if kwargs.get("emit_asset", True):
            dag = result.kwargs.get("dag")
            outlets = list(result.kwargs.get("outlets") or [])
            cls._declare_alias(outlets, dag.dag_id if dag else "", result.kwargs["task_id"])
            result.kwargs["outlets"] = outlets
        return result

    @classmethod
    def _declare_alias(cls, outlets: list[Any], dag_id: str, task_id: str) -> AssetAlias:
        """The task's AssetAlias, appended to `outlets` unless there (a mapped task's partial put it)."""
        alias = dvc_alias(cls.ASSET_SCHEME, dag_id, task_id)
        if alias not in outlets:
            outlets.append(alias)
        return alias

    @staticmethod
    def _asset_for(repo: str, path: str) -> Asset:
        return dvc_asset(repo, path)

    def _validate(self, *, rendered: bool) -> None:
        """The argument checks: on the literals at parse time, on the rendered values before storing them."""
        check_dvc_fields(
            self,
            rendered=rendered,
            required=self.REQUIRED_FIELDS,
            optional=self.OPTIONAL_FIELDS,
            path_required=self.PATH_REQUIRED,
        )

    @cached_property
    def hook(self) -> DvcHook:
        from airflow_provider_llmops.hooks.dvc import DvcHook

        return DvcHook(self.dvc_conn_id, repo=self.repo, subdir=self.subdir)

    def emit(self, context: Context, extra: dict[str, Any]) -> None:
        """Attach `extra` to the task's Asset event (through the alias: the Asset this run produced)."""
        from airflow_provider_llmops.assets.events import emit_event

        emit_event(
            context,
            extra,
            asset=self.asset,
            alias=self.asset_alias,
            resolve=lambda: self._asset_for(self.hook.settings.repo, str(self.path)),
        )

    def resolve(self, context: Context, rev: str | None, branch: str | None) -> tuple[str, str]:
        """(rev label, sha): explicit rev, else the branch as of the logical date, else the branch tip."""
        path = str(self.path)
        if rev:
            return rev, self.hook.resolve_rev(rev, path=path)
        logical_date = context.get("logical_date")
        if logical_date is not None:
            sha = self.hook.resolve_rev_at(logical_date, branch, path=path)
            self.log.info(
                "No rev given: %s as of logical date %s is %s",
                branch or self.hook.settings.rev,
                logical_date.isoformat(),
                sha[:12],
            )
            return sha, sha
        label = branch or self.hook.settings.rev
        return label, self.hook.resolve_rev(label, path=path)


class DvcPullOperator(DvcBaseOperator):
    """Materialise a DVC-tracked path at a rev into `local_path` (idempotent, md5-verified).

    Example::

        DvcPullOperator(task_id="pull", path="data/train", local_path="/shared/datasets/{{ ds_nodash }}")

    :param local_path: where the data goes (the folder itself, or the file).
    :param rev: branch, tag or commit; default: the last commit of `branch` at or before the
        logical date (branch tip for runs without one).
    :param branch: branch for date resolution (default: the connection's rev).
    The shared arguments (path, dvc_conn_id, repo, emit_asset) are those of `DvcBaseOperator`.
    :return: the `DvcPulled` record's XCom form: ``{repo, path, rev, sha, md5, size, nfiles, hash,
        local_path, transferred}``.
    """

    template_fields: Sequence[str] = dvc_template_fields("local_path", "rev", "branch")
    REQUIRED_FIELDS = ("local_path",)
    OPTIONAL_FIELDS = ("rev", "branch")

    def __init__(
        self, *, local_path: str, rev: str | None = None, branch: str | None = None, **kwargs: Any
    ) -> None:
        self.local_path = local_path
        self.rev = rev
        self.branch = branch
        super().__init__(**kwargs)

    @cached_property
    def puller(self) -> DvcPuller:
        from airflow_provider_llmops.utils.dvc_pull import DvcPuller

        return DvcPuller(self.hook)

    def execute(self, context: Context) -> dict[str, Any]:
        label, sha = self.resolve(context, self.rev, self.branch)
        # The rev as the user wrote it, so every message names both it and its sha.
        pulled = self.puller.pull(str(self.path), self.rev or sha, self.local_path).at(label)
        self.emit(context, pulled.asset_extra())
        return pulled.to_xcom()


class DvcAddOperator(DvcBaseOperator):
    """Publish the workspace data at `path` as a new version: dvc add, commit, tag, dvc push, git push.

    Validates first (clean tree apart from `path`, tag unused, remotes reachable); re-running
    with the same tag and data is a no-op (it still makes sure the data and the branch + tag
    reached the remotes, so a retry after a crash part-way finishes the publication). Needs
    `repo` to be a local git working copy.

    Example::

        DvcAddOperator(task_id="publish", path="data/train", tag="train-{{ ds_nodash }}", message="nightly")

    :param tag: the git tag of the new version.
    :param message: commit and tag message (default ``Update <path> (<tag>)``).
    The shared arguments (path, dvc_conn_id, repo, emit_asset) are those of `DvcBaseOperator`.
    :return: the `DvcPublished` record's XCom form: ``{repo, path, rev (the tag), sha, md5, size,
        nfiles, hash, created}``.
    """

    template_fields: Sequence[str] = dvc_template_fields("tag", "message")
    REQUIRED_FIELDS = ("tag",)
    OPTIONAL_FIELDS = ("message",)

    def __init__(self, *, tag: str, message: str | None = None, **kwargs: Any) -> None:
        self.tag = tag
        self.message = message
        super().__init__(**kwargs)

    @cached_property
    def publisher(self) -> DvcPublisher:
        from airflow_provider_llmops.utils.dvc_publish import DvcPublisher

        return DvcPublisher(self.hook)

    def execute(self, context: Context) -> dict[str, Any]:
        published = self.publisher.publish(str(self.path), self.tag, self.message)
        self.emit(context, published.asset_extra())
        return published.to_xcom()


class DvcPushOperator(DvcBaseOperator):
    """`dvc push` of `path` (or every output when None) from a local working copy to the remote.

    Example::

        DvcPushOperator(task_id="push", path="data/train")

    :return: ``{repo, path, pushed}`` (number of objects transferred).
    """

    PATH_REQUIRED = False

    def __init__(self, *, emit_asset: bool = False, **kwargs: Any) -> None:
        super().__init__(emit_asset=emit_asset, **kwargs)

    @cached_property
    def publisher(self) -> DvcPublisher:
        from airflow_provider_llmops.utils.dvc_publish import DvcPublisher

        return DvcPublisher(self.hook)

    def execute(self, context: Context) -> dict[str, Any]:
        return self.publisher.push(self.path).to_xcom()


class DvcDatasetReviewOperator(DvcBaseOperator):
    """Materialise two versions of a dataset and write a review (markdown, charts, summary).

    Example::

        DvcDatasetReviewOperator(task_id="review", path="data/train", output_dir="/shared/reviews/{{ ds_nodash }}")

    :param new_rev: version to review; default as in DvcPullOperator (logical date, then tip).
    :param old_rev: baseline; default: the ``new_sha`` of this task's last successful run, else
        the previous commit that changed the data (None: first version, everything is new).
    :param output_dir: where review.md and the charts go (default: a folder named after the
        two shas under ``$LLMOPS_DVC_WORK_DIR`` or the temp dir).
    :param data_dir: where both versions are materialised while they are compared (default:
        ``<output_dir>/data``).
    :param keep_data: keep the two materialised versions after the review (default: remove them;
        a later review fetches them again from the DVC cache).
    :param branch: branch for date resolution (default: the connection's rev).
    The shared arguments (path, dvc_conn_id, repo, emit_asset) are those of `DvcBaseOperator`;
    the AssetAlias of a templated task is ``dvc-review:<dag_id>:<task_id>``.
    :return: ``{path, markdown, charts, review_url, summary_text, summary, approval_markdown, old_rev, new_rev,
        old_sha, new_sha}``; ``approval_markdown`` is a bounded Markdown body for an approval step
        (flagged shifts, record and schema changes, label shares, a link to the full review).
    The asset event on ``dvc-review://<repo-name>/<path>`` carries the revs, shas and summary.

    In the Airflow UI the task gets a *Dataset review* link: the full review rendered, with its
    charts, served by the provider's ``llmops`` plugin on the API server (which must be able to
    read `output_dir`: a shared volume). The same page is ``review_url`` in the return value, and
    ``approval_markdown`` ends with a link to it.
    """

    ASSET_SCHEME = DVC_REVIEW_SCHEME
    template_fields: Sequence[str] = dvc_template_fields(
        "new_rev", "old_rev", "output_dir", "data_dir", "branch"
    )
    OPTIONAL_FIELDS = ("new_rev", "old_rev", "output_dir", "data_dir", "branch")

    def __init__(
        self,
        *,
        new_rev: str | None = None,
        old_rev: str | None = None,
        output_dir: str | None = None,
        data_dir: str | None = None,
        branch: str | None = None,
        keep_data: bool = False,
        **kwargs: Any,
    ) -> None:
        self.keep_data = keep_data
        self.new_rev = new_rev
        self.old_rev = old_rev
        self.output_dir = output_dir
        self.data_dir = data_dir
        self.branch = branch
        super().__init__(**kwargs)

    @property
    def operator_extra_links(self) -> tuple[BaseOperatorLink, ...]:  # type: ignore[override]
        """The *Dataset review* button; a property, so that parsing a DAG never loads the link class."""
        from airflow_provider_llmops.plugins.links import DatasetReviewLink

        return (DatasetReviewLink(),)

    @staticmethod
    def _asset_for(repo: str, path: str) -> Asset:
        return dvc_review_asset(repo, path)

    @cached_property
    def puller(self) -> DvcPuller:
        from airflow_provider_llmops.utils.dvc_pull import DvcPuller

        return DvcPuller(self.hook)

    def _baseline(self, context: Context, new_sha: str) -> str | None:
        """The sha to compare with when `old_rev` is not given."""
        from airflow_provider_llmops.utils.previous_run import last_success_xcom

        path = str(self.path)
        old_sha = last_success_xcom(context, self.task_id, "new_sha")
        if old_sha and old_sha != new_sha:
            self.log.info("Baseline: the last successful run reviewed %s", old_sha[:12])
            return str(old_sha)
        old_sha = self.hook.previous_rev(path, new_sha)
        self.log.info("Baseline: previous change of %s is %s", path, old_sha or "none (first version)")
        return old_sha

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_llmops.dataset_review import render_approval_markdown, review_datasets
        from airflow_provider_llmops.plugins.links import review_url

        path = str(self.path)
        new_label, new_sha = self.resolve(context, self.new_rev, self.branch)
        old_sha = (
            self.hook.resolve_rev(self.old_rev, path=path)
            if self.old_rev
            else self._baseline(context, new_sha)
        )
        old_label = self.old_rev or old_sha
        tag = f"{old_sha[:12] if old_sha else 'none'}..{new_sha[:12]}"
        root = _work_root() / _slug(self.hook.repo_name) / _slug(path)
        out_dir = Path(self.output_dir) if self.output_dir else root / "review" / tag
        data_dir = Path(self.data_dir) if self.data_dir else out_dir / "data"
        name = Path(path).name
        if old_sha:
            changes = self.puller.changed_files(path, old_sha, new_sha)
            self.log.info(
                "DVC listings of %s: %d added, %d removed, %d modified",
                tag,
                *(len(changes[k]) for k in ("added", "removed", "modified")),
            )
        pulled = [data_dir / sha[:12] for sha in (new_sha, old_sha) if sha]
        try:
            new = self.puller.pull(path, new_sha, pulled[0] / name)
            old_dir = Path(self.puller.pull(path, old_sha, pulled[1] / name).local_path) if old_sha else None
            review = review_datasets(
                old_dir,
                Path(new.local_path),
                out_dir,
                old_label=str(old_label or "none"),
                new_label=str(new_label),
            )
        finally:
            if not self.keep_data:
                for folder in pulled:
                    shutil.rmtree(folder, ignore_errors=True)
                if not self.data_dir:
                    with contextlib.suppress(OSError):
                        data_dir.rmdir()  # only when empty
        self.log.info("Dataset review of %s (%s):\n%s", path, tag, review.summary_text)
        revs = {"old_rev": old_label, "new_rev": new_label, "old_sha": old_sha, "new_sha": new_sha}
        ti = context.get("ti")  # absent when execute() is called outside a task run
        url = None
        if ti is not None:
            map_index = ti.map_index if ti.map_index is not None else -1
            url = review_url(ti.dag_id, ti.run_id, ti.task_id, map_index)
            self.log.info("Full review with charts in the Airflow UI: %s", url)
        self.emit(
            context,
            {"repo": self.hook.repo_label, "path": path, **revs, "md5": new.md5, "summary": review.summary},
        )
        return {
            "path": path,
            "markdown": str(review.markdown_path),
            "charts": [str(p) for p in review.chart_paths],
            "review_url": url,
            "summary_text": review.summary_text,
            "summary": review.summary,
            "approval_markdown": render_approval_markdown(review.summary, full_review_url=url),
            **revs,
        }
