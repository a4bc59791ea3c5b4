"""Model names and versions as Triton's repository layout needs them.

Example::

    check_model_name("embedder")    # ok
    check_model_name("../etc")      # TritonModelNameError
    check_version(0)                # TritonVersionError
"""

from __future__ import annotations

import re
from typing import Any

from airflow_provider_llmops.exceptions import TritonModelNameError, TritonVersionError

__all__ = ["check_model_name", "check_version"]

# A model name is one directory of the repository: no separators, no dot-only names, no spaces.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def check_model_name(name: Any, what: str = "model_name") -> str:
    """Return ``name`` when it is a single safe repository directory name, else raise."""
    if not isinstance(name, str) or not name:
        raise TritonModelNameError(f"{what} must be a non-empty string, got {name!r}.", model_name=str(name))
    if "/" in name or "\\" in name or ".." in name:
        raise TritonModelNameError(
            f"{what} {name!r} contains a path separator or '..': a Triton model name is one directory "
            "of the model repository. Use letters, digits, '_', '-' and '.' only, e.g. 'minilm-embedder'.",
            model_name=name,
        )
    if not _NAME.match(name):
        raise TritonModelNameError(
            f"{what} {name!r} is not a valid Triton model name: start with a letter or digit and use "
            "letters, digits, '_', '-' and '.' (at most 128 characters).",
            model_name=name,
        )
    return name


def check_version(version: Any, what: str = "version") -> int:
    """Return ``version`` as an int when it is a positive integer (``3`` or ``"3"``), else raise."""
    if isinstance(version, bool):
        raise TritonVersionError(f"{what} must be a positive integer, got {version!r}.")
    if isinstance(version, str) and version.strip().isdigit():
        version = int(version.strip())
    if not isinstance(version, int) or version < 1:
        raise TritonVersionError(
            f"{what} must be a positive integer (Triton version directories are 1, 2, 3, ...), got "
            f"{version!r}. Leave it unset to publish the next free version."
        )
    return version
