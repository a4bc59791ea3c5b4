"""Wait until a DVC-tracked path has a new version (new md5) on a branch or a tag pattern."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_llmops.assets.dvc import DEFAULT_CONN_ID
from airflow_provider_llmops.utils.dvc_checks import check_dvc_fields
from airflow_provider_llmops.utils.templating import ValidateAfterRender

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_llmops.utils.polling import TransientErrors

__all__ = ["DvcUpdateSensor"]


class DvcUpdateSensor(ValidateAfterRender, BaseSensorOperator):
    """Waits for a new md5 of `path` at the tip of `rev` (a branch) or the newest tag matching `tag_pattern`.

    :param path: tracked path inside the project.
    :param rev: branch to watch (default: the connection's ``rev`` extra, else ``main``);
        ignored when `tag_pattern` is set.
    :param tag_pattern: glob such as ``v*``: watch the newest matching tag instead.
    :param since_md5: md5 that counts as "old"; default: the md5 this task returned in its last
        successful run, else the md5 when waiting starts.
    :param repo: git URL or local path overriding the connection's ``repo`` extra; never with
        credentials in it (``https://token@...`` is refused: put them in the connection).
    :param subdir: the DVC project's folder inside the git repository (monorepos).
    :param deferrable: wait in the triggerer (default) instead of occupying a worker slot.
    :param max_transient_errors: polls in a row that may fail with a transient error (git
        origin or DVC remote unreachable, git failing or timing out, OS error) before the wait
        fails; each such failure is logged as a warning and retried at the next poll.
    :return: ``{rev, sha, md5}`` of the new version.
    """

    template_fields: Sequence[str] = ("path", "rev", "tag_pattern", "since_md5", "repo")
    ui_color = "#b07cff"

    def __init__(
        self,
        *,
        path: str,
        rev: str | None = None,
        tag_pattern: str | None = None,
        since_md5: str | None = None,
        dvc_conn_id: str = DEFAULT_CONN_ID,
        repo: str | None = None,
        subdir: str | None = None,
        deferrable: bool = True,
        poke_interval: float = 60,
        timeout: float = 7 * 24 * 3600,
        max_transient_errors: int = 3,
        **kwargs: Any,
    ) -> None:
        self.path = path
        self.rev = rev
        self.tag_pattern = tag_pattern
        self.since_md5 = since_md5
        self.repo = repo
        self.subdir = subdir
        self._validate(rendered=False)
        if not isinstance(max_transient_errors, int) or max_transient_errors < 1:
            raise ValueError(f"max_transient_errors must be an int >= 1, got {max_transient_errors!r}")
        if kwargs.get("mode") == "reschedule" and since_md5 is None:
            raise ValueError(
                "mode='reschedule' forgets the md5 seen when waiting started; pass since_md5 or use "
                "deferrable=True / mode='poke'"
            )
        super().__init__(poke_interval=poke_interval, timeout=timeout, **kwargs)
        self.dvc_conn_id = dvc_conn_id
        self.deferrable = deferrable
        self.max_transient_errors = max_transient_errors
        self._baseline: str | None = since_md5
        self._errors: TransientErrors | None = None  # of this try, made in execute()

    def _validate(self, *, rendered: bool) -> None:
        """The argument checks, as the DVC operators run them (see `DvcBaseOperator`)."""
        check_dvc_fields(self, rendered=rendered, optional=("since_md5",))
        if self.tag_pattern is not None and (
            not isinstance(self.tag_pattern, str) or not self.tag_pattern.strip()
        ):
            raise ValueError(f"tag_pattern must be a non-empty glob such as 'v*', got {self.tag_pattern!r}")
        if (
            not self.tag_pattern
            and self.rev is not None
            and (not isinstance(self.rev, str) or not self.rev.strip())
        ):
            raise ValueError(f"rev must be a branch name, got {self.rev!r}")

    def _rev(self) -> str | None:
        """The branch to watch; None: the newest tag, or (no rev given) the connection's rev."""
        return None if self.tag_pattern else (self.rev or None)

    def _init_baseline(self, context: Context) -> None:
        if self.since_md5:
            self._baseline = self.since_md5
            return
        from airflow_provider_llmops.utils.previous_run import last_success_xcom

        self._baseline = last_success_xcom(context, self.task_id, "md5")
        if self._baseline is None:
            from airflow_provider_llmops.hooks.dvc import DvcHook

            current = DvcHook(self.dvc_conn_id, repo=self.repo, subdir=self.subdir).current_version(
                self.path, self._rev(), self.tag_pattern
            )
            self._baseline = current.md5 if current else None
            self.log.info("Waiting for %s to change from md5 %s", self.path, self._baseline)
        else:
            self.log.info(
                "Waiting for %s to change from md5 %s (last successful run)", self.path, self._baseline
            )

    def poke(self, context: Context) -> PokeReturnValue:
        from airflow_provider_llmops.triggers.dvc import TRANSIENT_ERRORS, check_for_update
        from airflow_provider_llmops.utils.polling import TransientErrors as Errors

        if self._errors is None:
            self._errors = Errors(self.max_transient_errors, self.log)
        try:
            found = check_for_update(
                self.dvc_conn_id,
                self.repo,
                self.path,
                self._rev(),
                self.tag_pattern,
                self._baseline,
                self.log,
                subdir=self.subdir,
            )
        except TRANSIENT_ERRORS as err:
            self._errors.failed(err, repr(self.path))
            return PokeReturnValue(is_done=False)
        self._errors.ok()
        if found is None:
            return PokeReturnValue(is_done=False)
        self.log.info(
            "New version of %s: %s (%s, md5 %s)", self.path, found["rev"], found["sha"][:12], found["md5"]
        )
        return PokeReturnValue(is_done=True, xcom_value=found)

    def execute(self, context: Context) -> dict[str, Any] | None:
        self._errors = None
        self._init_baseline(context)
        if not self.deferrable:
            return super().execute(context)
        from airflow_provider_llmops.triggers.dvc import DvcUpdateTrigger
        from airflow_provider_llmops.utils.deferral import poke_then_defer

        return poke_then_defer(
            self,
            context,
            lambda: DvcUpdateTrigger(
                path=self.path,
                since_md5=self._baseline,
                rev=self._rev(),
                tag_pattern=self.tag_pattern,
                dvc_conn_id=self.dvc_conn_id,
                repo=self.repo,
                subdir=self.subdir,
                poke_interval=self.poke_interval,
                timeout=self.timeout,
                max_transient_errors=self.max_transient_errors,
            ),
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        from airflow_provider_llmops.exceptions import DvcWaitError

        where = f"{self.path!r} at {self.tag_pattern or self.rev or 'the connection rev'!r}"
        if not event:
            raise DvcWaitError(
                f"Waiting for {where} ended without an event from the trigger.", path=self.path
            )
        status = event.get("status")
        if status == "success":
            return {"rev": event["rev"], "sha": event["sha"], "md5": event["md5"]}
        if status == "timeout":
            from airflow.sdk.exceptions import AirflowSensorTimeout

            raise AirflowSensorTimeout(
                f"No new version of {where} (md5 other than {event.get('since_md5')}) within "
                f"{event.get('timeout')}s. Publish one, or raise timeout."
            )
        raise DvcWaitError(
            f"Waiting for a new version of {where} failed"
            + (f" ({event['failed_polls']} polls in a row)" if event.get("failed_polls", 1) > 1 else "")
            + f": {event.get('error_type')}: {event.get('error')}",
            rev=str(self.tag_pattern or self.rev or ""),
            path=self.path,
        )
