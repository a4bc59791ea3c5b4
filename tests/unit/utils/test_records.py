"""The typed records that travel through XCom and Asset events."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError, dataclass
from typing import ClassVar

import pytest

from airflow_provider_llmops.utils.dvc_records import DvcPulled, DvcVersion
from airflow_provider_llmops.utils.records import Record


@dataclass(frozen=True)
class _Model(Record):
    ASSET_EXCLUDE: ClassVar[tuple[str, ...]] = ("local_path",)
    name: str
    version: int
    tags: tuple[str, ...] = ()
    local_path: str = ""


def test_xcom_form_is_json_and_round_trips():
    record = _Model("embedder", 3, ("a", "b"), "/tmp/m")
    data = record.to_xcom()
    assert (
        json.loads(json.dumps(data))
        == data
        == {
            "name": "embedder",
            "version": 3,
            "tags": ["a", "b"],
            "local_path": "/tmp/m",
        }
    )
    assert _Model.from_xcom({**data, "tags": ("a", "b"), "added_later": 1}) == record
    assert record.asset_extra() == {"name": "embedder", "version": 3, "tags": ["a", "b"]}


def test_records_are_frozen():
    with pytest.raises(FrozenInstanceError):
        _Model("x", 1).version = 2  # type: ignore[misc]


def test_dvc_version_forms():
    version = DvcVersion(
        repo="/srv/ds", path="data/train", rev="v1", sha="a" * 40, md5="m.dir", size=10, nfiles=2
    )
    assert version.is_dir and version.at("v2").rev == "v2"
    assert "hash" in version.to_xcom() and "hash" not in version.asset_extra()
    pulled = DvcPulled(**version.to_xcom(), local_path="/data/train", transferred=True)
    assert pulled.asset_extra() == version.asset_extra()
    assert pulled.to_xcom()["local_path"] == "/data/train"
