"""Exceptions raised by the provider's hooks and operators.

Each class names one thing that went wrong; its message says what the external system
answered and what to do next. They do not derive from ``AirflowException``; Airflow fails
the task on any exception. Messages never contain passwords or tokens.
"""

from __future__ import annotations

__all__ = [
    "LlmopsError",
    "LockTimeoutError",
    "TritonConnectionError",
    "TritonError",
    "TritonInferenceError",
    "TritonModelLoadError",
]


class LlmopsError(Exception):
    """Base class of every error this provider raises on purpose."""


class LockTimeoutError(LlmopsError):
    """Another run held a lock (destination, working copy, clone) for too long."""


class TritonError(LlmopsError):
    """Something went wrong talking to a Triton Inference Server."""


class TritonConnectionError(TritonError):
    """The Triton server could not be reached, or the connection is misconfigured."""


class TritonModelLoadError(TritonError):
    """Triton refused to load (or unload) a model; ``server_message`` holds Triton's own error text."""

    def __init__(self, message: str, *, model_name: str, server_message: str = "") -> None:
        super().__init__(message)
        self.model_name = model_name
        self.server_message = server_message


class TritonInferenceError(TritonError):
    """An inference request failed; ``server_message`` holds Triton's own error text."""

    def __init__(self, message: str, *, model_name: str, server_message: str = "") -> None:
        super().__init__(message)
        self.model_name = model_name
        self.server_message = server_message


# --- Triton model deployment (packaging, publishing, deploy/rollback, embedding client) ------

__all__ += [
    "TritonConfigError",
    "TritonDeployError",
    "TritonEmbeddingError",
    "TritonModelNameError",
    "TritonPackagingError",
    "TritonPublishError",
    "TritonSmokeTestError",
    "TritonVersionError",
]


class TritonModelNameError(TritonError, ValueError):
    """A model name that is not one safe directory of the model repository (``/``, ``..``)."""

    def __init__(self, message: str, *, model_name: str = "") -> None:
        super().__init__(message)
        self.model_name = model_name


class TritonVersionError(TritonError, ValueError):
    """A model version that is not a positive integer, or one the repository does not hold."""


class TritonConfigError(TritonError, ValueError):
    """A generated or given model config fails offline validation; the message names the field."""


class TritonPackagingError(TritonError):
    """A model folder or manifest could not be packaged (missing files, export failure)."""


class TritonPublishError(TritonError):
    """Publishing into the model repository failed, or would overwrite a version with other content."""


class TritonSmokeTestError(TritonError):
    """A freshly loaded version answered the golden inputs with different outputs."""

    def __init__(self, message: str, *, model_name: str = "", version: int = 0) -> None:
        super().__init__(message)
        self.model_name = model_name
        self.version = version


class TritonDeployError(TritonError):
    """A deploy or rollback failed; the previously served version was kept serving."""

    def __init__(
        self, message: str, *, model_name: str = "", version: int = 0, server_message: str = ""
    ) -> None:
        super().__init__(message)
        self.model_name = model_name
        self.version = version
        self.server_message = server_message


class TritonEmbeddingError(TritonError):
    """The embedding model answered with an unexpected shape or dtype, or kept failing."""


# --- DVC data versioning -------------------------------------------------------------------

__all__ += [
    "DvcChecksumError",
    "DvcCommandError",
    "DvcDestinationError",
    "DvcDirtyWorkspaceError",
    "DvcError",
    "DvcLockTimeoutError",
    "DvcPathNotTrackedError",
    "DvcRemoteError",
    "DvcRevisionNotFoundError",
    "DvcTagExistsError",
    "DvcWaitError",
]


class DvcError(LlmopsError):
    """Something went wrong with a DVC project; ``repo``, ``rev``, ``sha`` and ``path`` say where.

    The message names what went wrong and what to do; the context is rendered from the fields,
    so every error reads the same way::

        DvcPathNotTrackedError("no data/x.dvc ...", repo="acme/datasets", rev="v1", sha="ddc1124e...")
        # str(): "no data/x.dvc ... [repo acme/datasets, rev 'v1' (ddc1124ec9ba)]"
    """

    def __init__(self, message: str, *, repo: str = "", rev: str = "", path: str = "", sha: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.repo = repo
        self.rev = rev
        self.path = path
        self.sha = sha

    @property
    def context(self) -> str:
        """``repo R, rev 'v1' (ddc1124ec9ba), path 'data/train'``: the parts that are known."""
        parts = [f"repo {self.repo}"] if self.repo else []
        short = self.sha[:12]
        rev_is_sha = bool(short) and (self.rev.startswith(short[:7]) or short.startswith(self.rev))
        if short and self.rev and not rev_is_sha:
            parts.append(f"rev {self.rev!r} ({short})")
        elif self.rev or short:
            parts.append(f"rev {self.rev or short!r}")  # the rev as the user wrote it
        if self.path:
            parts.append(f"path {self.path!r}")
        return ", ".join(parts)

    def __str__(self) -> str:
        return f"{self.message} [{self.context}]" if self.context else self.message

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only context survives pickling (Airflow sends task errors across processes).
        return (_rebuild_dvc_error, (type(self), self.message, self.repo, self.rev, self.path, self.sha))


def _rebuild_dvc_error(
    cls: type[DvcError], message: str, repo: str, rev: str, path: str, sha: str
) -> DvcError:
    return cls(message, repo=repo, rev=rev, path=path, sha=sha)


class DvcRevisionNotFoundError(DvcError):
    """A branch, tag, commit or date does not resolve to a commit of the project."""


class DvcPathNotTrackedError(DvcError):
    """The path has no ``.dvc`` file and no ``dvc.lock`` output at that revision."""


class DvcRemoteError(DvcError):
    """The DVC remote (or the git origin) is missing, unreachable, or lacks the data."""


class DvcChecksumError(DvcError):
    """Materialised data does not match the md5 DVC recorded (corrupted cache or remote)."""


class DvcDirtyWorkspaceError(DvcError):
    """Publishing needs a clean git working tree apart from the dataset path."""


class DvcTagExistsError(DvcError):
    """The tag to publish already exists and points at different data."""


class DvcCommandError(DvcError):
    """A git or dvc step failed or timed out; the message holds its (redacted) output."""


class DvcDestinationError(DvcError):
    """The pull destination holds data this provider did not write; it is left untouched."""


class DvcLockTimeoutError(DvcError, LockTimeoutError):
    """Another run held a destination, clone or working-copy lock for too long."""


class DvcWaitError(DvcError):
    """Waiting for a new dataset version timed out or failed."""


# --- Elasticsearch kNN indexing ------------------------------------------------------------

__all__ += [
    "ElasticsearchAliasError",
    "ElasticsearchBulkError",
    "ElasticsearchCompatibilityError",
    "ElasticsearchConnectionError",
    "ElasticsearchCountMismatchError",
    "ElasticsearchError",
    "ElasticsearchGateError",
    "ElasticsearchInputError",
    "EmbeddingError",
]


class ElasticsearchError(LlmopsError):
    """Something went wrong building or serving a kNN index; ``index`` and ``alias`` say where."""

    def __init__(self, message: str, *, index: str = "", alias: str = "") -> None:
        super().__init__(message)
        self.index = index
        self.alias = alias

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only context survives pickling (Airflow sends task errors across processes).
        return (_rebuild_es_error, (type(self), str(self.args[0]) if self.args else "", dict(self.__dict__)))


def _rebuild_es_error(
    cls: type[ElasticsearchError], message: str, state: dict[str, object]
) -> ElasticsearchError:
    err = cls.__new__(cls)
    Exception.__init__(err, message)
    err.__dict__.update(state)
    return err


class ElasticsearchConnectionError(ElasticsearchError):
    """The cluster could not be reached, is not healthy, or the connection is misconfigured."""


class ElasticsearchInputError(ElasticsearchError):
    """The documents to index are missing, empty or malformed; ``path`` and ``line`` say where."""

    def __init__(self, message: str, *, path: str = "", line: int | None = None, **kwargs: str) -> None:
        super().__init__(message, **kwargs)
        self.path = path
        self.line = line


class ElasticsearchAliasError(ElasticsearchError):
    """The alias cannot be managed safely (several indices, a concrete index of that name, ...)."""


class ElasticsearchCompatibilityError(ElasticsearchError):
    """An index was built with another embedding model, dims or similarity than the encoder in use."""

    def __init__(self, message: str, *, mismatches: dict[str, tuple[object, object]], **kwargs: str) -> None:
        super().__init__(message, **kwargs)
        self.mismatches = mismatches


class ElasticsearchBulkError(ElasticsearchError):
    """Documents could not be indexed after all retries; ``failed`` lists (id, status, reason)."""

    def __init__(self, message: str, *, failed: list[tuple[str, int, str]], **kwargs: str) -> None:
        super().__init__(message, **kwargs)
        self.failed = failed


class ElasticsearchCountMismatchError(ElasticsearchError):
    """After the load the index holds another number of documents than were sent."""


class ElasticsearchGateError(ElasticsearchError):
    """The new index failed the quality gate; the alias was left where it was."""

    def __init__(self, message: str, *, evaluation: dict[str, object], **kwargs: str) -> None:
        super().__init__(message, **kwargs)
        self.evaluation = evaluation


class EmbeddingError(LlmopsError):
    """An encoder could not be loaded or returned vectors of the wrong shape."""


# --- DeepSpeed training ----------------------------------------------------------------------

__all__ += [
    "TrainingConfigError",
    "TrainingDataError",
    "TrainingError",
    "TrainingLaunchError",
    "TrainingManifestError",
    "TrainingModelError",
    "TrainingOutputConflictError",
    "TrainingSpecError",
]


class TrainingError(LlmopsError):
    """Something went wrong preparing, launching or reading back a training job."""


class TrainingSpecError(TrainingError):
    """The job spec is malformed; ``field`` is the dotted name of the bad field."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class TrainingConfigError(TrainingSpecError):
    """The DeepSpeed configuration is impossible (e.g. fp16 and bf16, offload_param without ZeRO-3)."""


class TrainingDataError(TrainingError):
    """The dataset is missing or a row lacks the fields the task needs; ``path``/``line`` say where."""

    def __init__(self, message: str, *, path: str = "", line: int = 0) -> None:
        super().__init__(message)
        self.path = path
        self.line = line


class TrainingModelError(TrainingError):
    """The model folder is missing or does not fit the task (not a causal LM, not an encoder)."""

    def __init__(self, message: str, *, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class TrainingOutputConflictError(TrainingError):
    """The output location holds a finished run of a different spec (another spec hash)."""


class TrainingLaunchError(TrainingError):
    """The training processes, pod or Job failed; the message ends with the tail of their log."""


class TrainingManifestError(TrainingError):
    """The run finished but its manifest.json is missing or unreadable at the output location."""
