"""Thin operators over `DvcHook`: pull a dataset version, publish one, push data, review a change.

Each operator declares the dataset Asset ``dvc://<repo-name>/<path>`` at parse time (repo-name:
the last component of `repo` without ``.git``, or the connection id when `repo` is not given)
and attaches ``{rev, sha, md5, size, nfiles, ...}`` to the asset event at run time. When `path`
or `repo` is templated, the Asset is only known at run time: the operator then declares the
AssetAlias ``dvc:<dag_id>:<task_id>`` and adds the rendered Asset to it when it runs (see
`airflow_provider_llmops.assets`).

Without an explicit rev, `DvcPullOperator` and `DvcDatasetReviewOperator` use the last commit
on the branch at or before the run's logical date, so a backfill reproduces the data each date saw.

The hook is imported inside `execute()` only: parsing a DAG never loads the git/DVC plumbing.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator

from airflow_provider_llmops.assets import (
    ASSET_KEYS,
    DEFAULT_CONN_ID,
    check_path,
    check_rendered_repo,
    check_repo,
    dvc_alias,
    dvc_asset,
    dvc_review_asset,
    is_templated,
    last_success_xcom,
)

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Asset, AssetAlias, Context

    from airflow_provider_llmops.hooks.dvc import DvcHook

__all__ = [
    "DvcAddOperator",
    "DvcDatasetReviewOperator",
    "DvcPullOperator",
    "DvcPushOperator",
    "dvc_asset",
]


def _work_root() -> Path:
    return Path(os.environ.get("LLMOPS_DVC_WORK_DIR") or Path(tempfile.gettempdir()) / "airflow-llmops-dvc")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "data"


def _require(name: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")


def _check_repo_literal(repo: Any) -> None:
    """At parse time: `repo` without credentials, unless it is templated (checked once rendered)."""
    if not is_templated(repo):
        check_repo(repo)


def _check_rendered(path: Any, repo: Any) -> None:
    """In execute(), on the rendered values: the parse-time checks again (a Param may hold anything)."""
    if path is not None:
        check_path(path)
    check_repo(repo)


def _declare_alias(op: BaseOperator, kind: str) -> AssetAlias:
    """Append the AssetAlias of a task whose Asset is templated to its outlets (needs dag_id)."""
    alias = dvc_alias(kind, op.dag_id, op.task_id)
    op.outlets.append(alias)
    return alias


def _with_outlet(kwargs: dict[str, Any], outlet: Asset) -> None:
    kwargs["outlets"] = [*(kwargs.pop("outlets", None) or []), outlet]


class _DvcLineage:
    """Mixin (not an operator class: no extra apply_defaults layer) for the dataset operators.

    `_init_dvc(...)` runs before ``BaseOperator.__init__`` (literal path: the Asset goes into
    `outlets`); `_declare_alias(self, kind)` after it (templated: the AssetAlias needs dag_id).
    """

    _ASSET_KIND = "dvc"

    path: str
    dvc_conn_id: str
    repo: str | None
    asset: Asset | None
    asset_alias: AssetAlias | None

    def _init_dvc(
        self, path: str, dvc_conn_id: str, repo: str | None, emit_asset: bool, kwargs: dict[str, Any]
    ) -> bool:
        """Validate and store the shared arguments; True when an alias must be declared after init."""
        check_path(path)
        _check_repo_literal(repo)
        self.path = path
        self.dvc_conn_id = dvc_conn_id
        self.repo = repo
        self.asset = None
        self.asset_alias = None
        if not emit_asset:
            return False
        if is_templated(path, repo):
            return True
        self.asset = self._asset_for(repo or dvc_conn_id, path)
        _with_outlet(kwargs, self.asset)
        return False

    @staticmethod
    def _asset_for(repo_or_conn: str, path: str) -> Asset:
        return dvc_asset(repo_or_conn, path)

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Render, then refuse a `repo` with credentials before Airflow stores the rendered fields."""
        super().render_template_fields(context, jinja_env)  # type: ignore[misc]
        check_rendered_repo(self.repo)

    def get_hook(self) -> DvcHook:
        from airflow_provider_llmops.hooks.dvc import DvcHook

        return DvcHook(self.dvc_conn_id, repo=self.repo)

    def _emit(self, context: Context, extra: dict[str, Any]) -> None:
        events = context.get("outlet_events")
        if events is None:
            return
        if self.asset is not None:
            events[self.asset].extra = extra
        elif self.asset_alias is not None:
            # Rendered values now: the Asset this run actually produced.
            asset = self._asset_for(self.repo or self.dvc_conn_id, self.path)
            events[self.asset_alias].add(asset, extra=extra)

    def _resolve(
        self, hook: DvcHook, context: Context, rev: str | None, branch: str | None
    ) -> tuple[str, str]:
        """(rev label, sha): explicit rev, else the branch as of the logical date, else the branch tip."""
        if rev:
            return rev, hook.resolve_rev(rev, path=self.path)
        logical_date = context.get("logical_date")
        if logical_date is not None:
            sha = hook.resolve_rev_at(logical_date, branch, path=self.path)
            hook.log.info(
                "No rev given: %s as of logical date %s is %s",
                branch or hook.settings.rev,
                logical_date.isoformat(),
                sha[:12],
            )
            return sha, sha
        label = branch or hook.settings.rev
        return label, hook.resolve_rev(label, path=self.path)


class DvcPullOperator(_DvcLineage, BaseOperator):
    """Materialise a DVC-tracked path at a rev into `local_path` (idempotent, md5-verified).

    :param path: tracked path inside the project (a folder or file with a ``.dvc`` file).
    :param local_path: where the data goes (the folder itself, or the file).
    :param rev: branch, tag or commit; default: the last commit of `branch` at or before the
        logical date (branch tip for runs without one).
    :param branch: branch for date resolution (default: the connection's rev).
    :param dvc_conn_id: ``llmops_dvc`` connection (repo, rev, remote, credentials).
    :param repo: git URL or local path overriding the connection's ``repo`` extra, without
        credentials (``https://token@...`` is refused, at parse time or once rendered: a template
        field is stored unmasked; put them in the connection). It also names
        the Asset (``dvc://<repo-name>/<path>``); without it the Asset is named after the
        connection id (``dvc://<dvc_conn_id>/<path>``), so two connections to one project give
        two Assets: pass `repo` when several DAGs must agree on the name.
    :param emit_asset: declare the Asset (or, when `path`/`repo` is templated, the AssetAlias
        ``dvc:<dag_id>:<task_id>``) as outlet and attach the version to its event.
    :return: ``{repo, path, rev, sha, md5, size, nfiles, local_path, transferred}``.
    """

    template_fields: Sequence[str] = ("path", "local_path", "rev", "branch", "repo")
    ui_color = "#945dd6"

    def __init__(
        self,
        *,
        path: str,
        local_path: str,
        rev: str | None = None,
        branch: str | None = None,
        dvc_conn_id: str = DEFAULT_CONN_ID,
        repo: str | None = None,
        emit_asset: bool = True,
        **kwargs: Any,
    ) -> None:
        _require("local_path", local_path)
        if rev is not None:
            _require("rev", rev)
        alias = self._init_dvc(path, dvc_conn_id, repo, emit_asset, kwargs)
        super().__init__(**kwargs)
        if alias:
            self.asset_alias = _declare_alias(self, self._ASSET_KIND)
        self.local_path = local_path
        self.rev = rev
        self.branch = branch

    def execute(self, context: Context) -> dict[str, Any]:
        _check_rendered(self.path, self.repo)
        hook = self.get_hook()
        label, sha = self._resolve(hook, context, self.rev, self.branch)
        result = hook.pull(self.path, sha, self.local_path)
        result["rev"] = label
        self._emit(context, {k: result.get(k) for k in ASSET_KEYS})
        return {k: result.get(k) for k in (*ASSET_KEYS, "local_path", "transferred")}


class DvcAddOperator(_DvcLineage, BaseOperator):
    """Publish the workspace data at `path` as a new version: dvc add, commit, tag, dvc push, git push.

    Validates first (clean tree apart from `path`, tag unused, remotes reachable); re-running
    with the same tag and data is a no-op (it still makes sure the data and the branch + tag
    reached the remotes, so a retry after a crash part-way finishes the publication). Needs
    `repo` to be a local git working copy.

    :param dvc_conn_id: ``llmops_dvc`` connection (repo, rev, remote, credentials).
    :param repo: git URL or local path overriding the connection's ``repo`` extra, without
        credentials (``https://token@...`` is refused, at parse time or once rendered: a template
        field is stored unmasked; put them in the connection). It also names
        the Asset (``dvc://<repo-name>/<path>``); without it the Asset is named after the
        connection id (``dvc://<dvc_conn_id>/<path>``), so two connections to one project give
        two Assets: pass `repo` when several DAGs must agree on the name.
    :param emit_asset: declare the Asset (or, when `path`/`repo` is templated, the AssetAlias
        ``dvc:<dag_id>:<task_id>``) as outlet and attach the version to its event.
    :return: ``{repo, path, rev (the tag), sha, md5, size, nfiles, created}``.
    """

    template_fields: Sequence[str] = ("path", "tag", "message", "repo")
    ui_color = "#945dd6"

    def __init__(
        self,
        *,
        path: str,
        tag: str,
        message: str | None = None,
        dvc_conn_id: str = DEFAULT_CONN_ID,
        repo: str | None = None,
        emit_asset: bool = True,
        **kwargs: Any,
    ) -> None:
        _require("tag", tag)
        alias = self._init_dvc(path, dvc_conn_id, repo, emit_asset, kwargs)
        super().__init__(**kwargs)
        if alias:
            self.asset_alias = _declare_alias(self, self._ASSET_KIND)
        self.tag = tag
        self.message = message

    def execute(self, context: Context) -> dict[str, Any]:
        _check_rendered(self.path, self.repo)
        result = self.get_hook().add_and_publish(self.path, self.tag, self.message)
        self._emit(context, {k: result.get(k) for k in ASSET_KEYS})
        return {k: result.get(k) for k in (*ASSET_KEYS, "created")}


class DvcPushOperator(BaseOperator):
    """`dvc push` of `path` (or every output when None) from a local working copy to the remote.

    :return: ``{repo, path, pushed}`` (number of objects transferred).
    """

    template_fields: Sequence[str] = ("path", "repo")

    def __init__(
        self,
        *,
        path: str | None = None,
        dvc_conn_id: str = DEFAULT_CONN_ID,
        repo: str | None = None,
        **kwargs: Any,
    ) -> None:
        if path is not None:
            check_path(path)
        _check_repo_literal(repo)
        super().__init__(**kwargs)
        self.path = path
        self.dvc_conn_id = dvc_conn_id
        self.repo = repo

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        """Render, then refuse a `repo` with credentials before Airflow stores the rendered fields."""
        super().render_template_fields(context, jinja_env)
        check_rendered_repo(self.repo)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_llmops.hooks.dvc import DvcHook

        _check_rendered(self.path, self.repo)
        return DvcHook(self.dvc_conn_id, repo=self.repo).push(self.path)


class DvcDatasetReviewOperator(_DvcLineage, BaseOperator):
    """Materialise two versions of a dataset and write a review (markdown, charts, summary).

    :param new_rev: version to review; default as in DvcPullOperator (logical date, then tip).
    :param old_rev: baseline; default: the ``new_sha`` of this task's last successful run, else
        the previous commit that changed the data (None: first version, everything is new).
    :param output_dir: where review.md and the charts go (default: a folder named after the
        two shas under ``$LLMOPS_DVC_WORK_DIR`` or the temp dir).
    :param data_dir: where both versions are materialised (default: next to output_dir).
    :param dvc_conn_id: ``llmops_dvc`` connection (repo, rev, remote, credentials).
    :param repo: git URL or local path overriding the connection's ``repo`` extra, without
        credentials (``https://token@...`` is refused, at parse time or once rendered: a template
        field is stored unmasked; put them in the connection). It also names
        the Asset (``dvc://<repo-name>/<path>``); without it the Asset is named after the
        connection id (``dvc://<dvc_conn_id>/<path>``), so two connections to one project give
        two Assets: pass `repo` when several DAGs must agree on the name.
    :param emit_asset: declare the Asset (or, when `path`/`repo` is templated, the AssetAlias
        ``dvc-review:<dag_id>:<task_id>``) as outlet and attach the version to its event.
    :return: ``{markdown, charts, summary_text, summary, old_rev, new_rev, old_sha, new_sha}``.
    The asset event on ``dvc-review://<repo-name>/<path>`` carries the revs, shas and summary.
    """

    template_fields: Sequence[str] = (
        "path",
        "new_rev",
        "old_rev",
        "output_dir",
        "data_dir",
        "branch",
        "repo",
    )

    def __init__(
        self,
        *,
        path: str,
        new_rev: str | None = None,
        old_rev: str | None = None,
        output_dir: str | None = None,
        data_dir: str | None = None,
        branch: str | None = None,
        dvc_conn_id: str = DEFAULT_CONN_ID,
        repo: str | None = None,
        emit_asset: bool = True,
        **kwargs: Any,
    ) -> None:
        for name, value in (("new_rev", new_rev), ("old_rev", old_rev), ("output_dir", output_dir)):
            if value is not None:
                _require(name, value)
        alias = self._init_dvc(path, dvc_conn_id, repo, emit_asset, kwargs)
        super().__init__(**kwargs)
        if alias:
            self.asset_alias = _declare_alias(self, self._ASSET_KIND)
        self.new_rev = new_rev
        self.old_rev = old_rev
        self.output_dir = output_dir
        self.data_dir = data_dir
        self.branch = branch

    _ASSET_KIND = "dvc-review"

    @staticmethod
    def _asset_for(repo_or_conn: str, path: str) -> Asset:
        return dvc_review_asset(repo_or_conn, path)

    def execute(self, context: Context) -> dict[str, Any]:
        from airflow_provider_llmops.dataset_review import review_datasets

        _check_rendered(self.path, self.repo)
        hook = self.get_hook()
        new_label, new_sha = self._resolve(hook, context, self.new_rev, self.branch)
        old_label: str | None
        old_sha: str | None
        if self.old_rev:
            old_label, old_sha = self.old_rev, hook.resolve_rev(self.old_rev, path=self.path)
        else:
            old_sha = last_success_xcom(context, self.task_id, "new_sha")
            if old_sha and old_sha != new_sha:
                self.log.info("Baseline: the last successful run reviewed %s", old_sha[:12])
            else:
                old_sha = hook.previous_rev(self.path, new_sha)
                self.log.info(
                    "Baseline: previous change of %s is %s", self.path, old_sha or "none (first version)"
                )
            old_label = old_sha
        tag = f"{old_sha[:12] if old_sha else 'none'}..{new_sha[:12]}"
        root = _work_root() / _slug(hook.repo_name) / _slug(self.path)
        out_dir = Path(self.output_dir) if self.output_dir else root / "review" / tag
        data_dir = Path(self.data_dir) if self.data_dir else root / "data"
        name = Path(self.path).name
        new_info = hook.pull(self.path, new_sha, data_dir / new_sha[:12] / name)
        old_dir: Path | None = None
        if old_sha:
            old_info = hook.pull(self.path, old_sha, data_dir / old_sha[:12] / name)
            old_dir = Path(old_info["local_path"])
        review = review_datasets(
            old_dir,
            Path(new_info["local_path"]),
            out_dir,
            old_label=str(old_label or "none"),
            new_label=str(new_label),
        )
        self.log.info("Dataset review of %s (%s):\n%s", self.path, tag, review.summary_text)
        result = {
            "markdown": str(review.markdown_path),
            "charts": [str(p) for p in review.chart_paths],
            "summary_text": review.summary_text,
            "summary": review.summary,
            "old_rev": old_label,
            "new_rev": new_label,
            "old_sha": old_sha,
            "new_sha": new_sha,
        }
        self._emit(
            context,
            {
                "repo": hook.repo_label,
                "path": self.path,
                "old_rev": old_label,
                "new_rev": new_label,
                "old_sha": old_sha,
                "new_sha": new_sha,
                "md5": new_info["md5"],
                "summary": review.summary,
            },
        )
        return result
