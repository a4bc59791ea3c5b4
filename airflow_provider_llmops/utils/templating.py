"""Small checks on operator arguments that hold Jinja templates until the task runs.

Example::

    if not is_templated(repo):
        check_repo(repo)  # literal: check at parse time; templated: once rendered
"""

from __future__ import annotations

from typing import Any

__all__ = ["is_templated", "require_str"]


def is_templated(*values: Any) -> bool:
    """True when any value is a string holding a Jinja expression (rendered at run time)."""
    return any(isinstance(v, str) and "{{" in v for v in values)


def require_str(name: str, value: Any, *, optional: bool = False) -> None:
    """ValueError unless `value` is a non-empty string (or None when `optional`)."""
    if optional and value is None:
        return
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
