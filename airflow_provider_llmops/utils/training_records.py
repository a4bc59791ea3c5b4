"""The training manifest as a typed record (XCom and Asset extra), and the model Asset it names.

Stdlib only; the operators import it when a run finishes, not at DAG parse time. Example::

    record = TrainingManifest.from_manifest(json.loads(Path("out/manifest.json").read_text()))
    record.to_xcom()["model_uri"]     # 's3://bucket/runs/bot/model'
    model_asset(record.name).uri   # 'model://bot' (the spec hash is in the event's extra)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from airflow_provider_llmops.utils.records import Record

__all__ = ["TrainingManifest"]


@dataclass(frozen=True)
class TrainingManifest(Record):
    """Key fields of a finished run's ``manifest.json``; `manifest_uri` points at the whole file."""

    # The loss curve and resolved configs stay in the manifest file: Asset extras should be small.
    ASSET_EXCLUDE: ClassVar[tuple[str, ...]] = ("loss_curve",)

    name: str
    task: str
    spec_hash: str
    model_uri: str
    output_uri: str
    manifest_uri: str = ""
    loss_plot_uri: str = ""
    base_model: str = ""
    dataset_path: str = ""
    dataset_rev: str = ""
    dataset_md5: str = ""
    steps: int = 0
    resumed_from_step: int = 0
    world_size: int = 0
    first_loss: float | None = None
    final_loss: float | None = None
    samples_per_s: float = 0.0
    tokens_per_s: float = 0.0
    wall_time_s: float = 0.0
    loss_curve: tuple[tuple[int, float], ...] = field(default=())

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], *, manifest_uri: str = "") -> TrainingManifest:
        dataset = manifest.get("dataset") or {}
        return cls(
            name=str(manifest["name"]),
            task=str(manifest["task"]),
            spec_hash=str(manifest["spec_hash"]),
            model_uri=str(manifest["model_uri"]),
            output_uri=str(manifest.get("output_uri", "")),
            manifest_uri=manifest_uri,
            loss_plot_uri=str(manifest.get("loss_plot_uri", "")),
            base_model=str(manifest.get("base_model", "")),
            dataset_path=str(dataset.get("path", "")),
            dataset_rev=str(dataset.get("rev", "")),
            dataset_md5=str(dataset.get("md5", "")),
            steps=int(manifest.get("steps", 0)),
            resumed_from_step=int(manifest.get("resumed_from_step", 0)),
            world_size=int(manifest.get("world_size", 0)),
            first_loss=manifest.get("first_loss"),
            final_loss=manifest.get("final_loss"),
            samples_per_s=float(manifest.get("samples_per_s", 0.0)),
            tokens_per_s=float(manifest.get("tokens_per_s", 0.0)),
            wall_time_s=float(manifest.get("wall_time_s", 0.0)),
            loss_curve=tuple((int(s), float(v)) for s, v in manifest.get("loss_curve", [])),
        )
