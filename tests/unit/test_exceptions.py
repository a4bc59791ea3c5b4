"""Errors format their own context: repository, the rev as the user wrote it and its sha, path."""

from __future__ import annotations

import pickle

from airflow_provider_llmops.exceptions import DvcError, DvcPathNotTrackedError


def test_dvc_error_names_rev_and_sha():
    err = DvcPathNotTrackedError(
        "not tracked.", repo="/srv/ds", rev="v1", sha="ddc1124ec9ba" + "0" * 28, path="d"
    )
    assert str(err) == "not tracked. [repo /srv/ds, rev 'v1' (ddc1124ec9ba), path 'd']"


def test_dvc_error_with_a_sha_rev_shows_it_as_written():
    sha = "ddc1124ec9ba" + "0" * 28
    assert str(DvcError("x", rev=sha, sha=sha)) == f"x [rev '{sha}']"
    assert str(DvcError("plain")) == "plain"


def test_dvc_error_survives_pickling():
    err = pickle.loads(pickle.dumps(DvcPathNotTrackedError("m", repo="r", rev="v1", path="p")))
    assert isinstance(err, DvcPathNotTrackedError) and (err.repo, err.rev, err.path) == ("r", "v1", "p")
