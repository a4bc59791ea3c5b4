"""The kNN operators at parse time: arguments, template fields, lineage; no server."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from airflow.sdk import DAG

from airflow_provider_llmops.operators.elasticsearch import (
    ElasticsearchAliasRollbackOperator,
    ElasticsearchKnnIndexOperator,
)

START = datetime(2024, 1, 1, tzinfo=timezone.utc)


def _op(**kwargs):
    args = {"task_id": "index", "alias": "docs", "input_path": "/data", "dataset_rev": "v1", **kwargs}
    with DAG("es_unit", schedule=None, start_date=START):
        return ElasticsearchKnnIndexOperator(**args)


def test_literal_alias_declares_the_asset():
    op = _op(cluster="prod")
    assert op.asset is not None and op.asset.uri == "elasticsearch://prod/docs"
    assert op.asset in op.outlets
    assert _op().asset.uri == "elasticsearch://elasticsearch_default/docs"


def test_templated_alias_declares_an_asset_alias():
    op = _op(alias="{{ params.alias }}")
    assert op.asset is None and op.asset_alias is not None
    assert op.asset_alias.name == "elasticsearch:es_unit:index"


def test_template_fields():
    assert {"alias", "input_path", "dataset_rev", "model", "judgments_path"} <= set(
        ElasticsearchKnnIndexOperator.template_fields
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"encoder": "openai"}, "encoder must be one of local, triton"),
        ({"similarity": "euclid"}, "similarity must be one of"),
        ({"index_type": "ivf"}, "index_type must be one of"),
        ({"chunk_size": 10, "chunk_overlap": 10}, "overlap"),
        ({"min_recall": 2}, "gate"),
        ({"keep_indices": 0}, "keep_indices"),
        ({"alias": "Docs"}, "not a valid Elasticsearch alias name"),
        ({"alias": "_docs"}, "not a valid Elasticsearch alias name"),
    ],
)
def test_bad_arguments_fail_at_parse_time(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _op(**kwargs)


def test_rendered_values_are_validated():
    from airflow.sdk.definitions._internal.templater import create_template_env

    op = _op(alias="{{ params.alias }}", dataset_rev="{{ params.rev }}")
    env = create_template_env()
    with pytest.raises(ValueError, match="not a valid Elasticsearch alias name"):
        op._do_render_template_fields(
            op, op.template_fields, {"params": {"alias": "Bad Alias", "rev": "v1"}}, env, set()
        )
    op = _op(dataset_rev="{{ params.rev }}")
    with pytest.raises(ValueError, match="dataset_rev must be a non-empty string"):
        op._do_render_template_fields(op, op.template_fields, {"params": {"rev": ""}}, env, set())


def test_triton_encoder_is_the_triton_embedding_client():
    from airflow_provider_llmops.utils.triton_embedding import TritonEmbeddingClient

    op = _op(
        encoder="triton",
        model="minilm",
        model_version="3",
        triton_conn_id="tr",
        encoder_kwargs={"concurrency": 2},
    )
    encoder = op.make_encoder()
    assert isinstance(encoder, TritonEmbeddingClient)


def test_rollback_operator_lineage():
    with DAG("es_unit_rb", schedule=None, start_date=START):
        op = ElasticsearchAliasRollbackOperator(task_id="rb", alias="docs", cluster="prod")
    assert op.asset.uri == "elasticsearch://prod/docs"
