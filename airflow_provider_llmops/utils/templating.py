"""Small checks on operator arguments that hold Jinja templates until the task runs.

Example::

    if not is_templated(repo):
        check_repo(repo)  # literal: check at parse time; templated: once rendered
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2
    from airflow.sdk import Context

__all__ = ["ValidateAfterRender", "is_templated", "require_str"]


def is_templated(*values: Any) -> bool:
    """True when any value is a string holding a Jinja expression (rendered at run time)."""
    return any(isinstance(v, str) and "{{" in v for v in values)


def require_str(name: str, value: Any, *, optional: bool = False) -> None:
    """ValueError unless `value` is a non-empty string (or None when `optional`)."""
    if optional and value is None:
        return
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")


class ValidateAfterRender:
    """Mixin for operators and sensors: run ``self._validate(rendered=True)`` once rendering is done.

    Hooked on ``_do_render_template_fields`` (acting when ``parent is self``), as the cncf
    KubernetesPodOperator hooks its own step there: a mapped task never calls
    ``render_template_fields``; it renders through this method on the unmapped operator, and
    Airflow stores the rendered fields right after. Raising here keeps a bad value (a token in
    a URL) out of the stored fields. Put it before the Airflow base class::

        class MyOperator(ValidateAfterRender, BaseOperator):
            def _validate(self, *, rendered: bool) -> None:
                require_str("path", self.path)
    """

    def _validate(self, *, rendered: bool) -> None:
        raise NotImplementedError

    def _do_render_template_fields(
        self,
        parent: Any,
        template_fields: Iterable[str],
        context: Context,
        jinja_env: jinja2.Environment,
        seen_oids: set[int],
    ) -> None:
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)  # type: ignore[misc]
        if parent is self:
            self._validate(rendered=True)
