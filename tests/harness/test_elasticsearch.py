"""The Elasticsearch harness against a real server: kNN round trip and bad set-ups."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from dev.harness import elasticsearch as es_harness
from dev.harness.common import HarnessError
from dev.harness.elasticsearch import ElasticsearchServer

pytestmark = pytest.mark.integration

DOCS = {
    "north": [0.0, 1.0, 0.0],
    "east": [1.0, 0.0, 0.0],
    "up": [0.0, 0.0, 1.0],
    "north-east": [0.7, 0.7, 0.0],
}


@pytest.mark.integration
def test_knn_search_finds_nearest_document(es_client, es_index_prefix):
    from elasticsearch.helpers import bulk

    index = f"{es_index_prefix}vectors"
    es_client.indices.create(
        index=index,
        mappings={
            "properties": {
                "title": {"type": "keyword"},
                "embedding": {"type": "dense_vector", "dims": 3, "similarity": "cosine", "index": True},
            }
        },
    )
    ok, errors = bulk(
        es_client,
        ({"_index": index, "_id": name, "title": name, "embedding": vec} for name, vec in DOCS.items()),
        raise_on_error=False,
    )
    assert (ok, errors) == (len(DOCS), [])
    es_client.indices.refresh(index=index)

    resp = es_client.search(
        index=index,
        knn={"field": "embedding", "query_vector": [0.1, 0.9, 0.05], "k": 2, "num_candidates": 10},
        source=["title"],
    )
    hits = resp["hits"]["hits"]
    assert [hit["_id"] for hit in hits] == ["north", "north-east"]
    assert hits[0]["_source"]["title"] == "north"
    mapping = es_client.indices.get_mapping(index=index)[index]["mappings"]["properties"]["embedding"]
    assert mapping["dims"] == 3 and mapping["similarity"] == "cosine"


@pytest.mark.integration
def test_es_client_cleans_up_prefixed_indices(elasticsearch_server, es_client, es_index_prefix):
    # The fixture's own clean-up is checked by the next test that sees a clean cluster; here we
    # check that the cluster is reachable through the url the server reports.
    es_client.indices.create(index=f"{es_index_prefix}scratch")
    health = es_client.cluster.health(wait_for_status="yellow", timeout="30s")
    assert health["status"] in ("green", "yellow")
    assert elasticsearch_server.url.startswith("http://127.0.0.1:")


@pytest.mark.integration
def test_no_leftover_indices_from_earlier_tests(es_client):
    leftovers = es_client.indices.get(index="t-*", expand_wildcards="all")
    assert not [name for name in leftovers if "scratch" in name or "vectors" in name]


@pytest.mark.integration
def test_nonexistent_es_java_home_is_rejected(monkeypatch, tmp_path):
    monkeypatch.setenv("ES_JAVA_HOME", str(tmp_path / "no-such-jdk"))
    with pytest.raises(HarnessError, match="ES_JAVA_HOME") as info:
        ElasticsearchServer(name="bad-java").start()
    assert "no-such-jdk" in str(info.value)


@pytest.mark.integration
def test_unset_es_java_home_without_any_jdk_is_rejected(monkeypatch, tmp_path):
    monkeypatch.delenv("ES_JAVA_HOME", raising=False)
    monkeypatch.setattr(es_harness, "JAVA_CANDIDATES", (str(tmp_path / "jdk-21"),))
    with pytest.raises(HarnessError, match="ES_JAVA_HOME is not set") as info:
        ElasticsearchServer(name="no-java").start()
    assert str(tmp_path / "jdk-21") in str(info.value)


@pytest.mark.integration
def test_too_old_java_is_rejected(monkeypatch):
    old = next((p for p in Path("/usr/lib/jvm").glob("*17*") if (p / "bin" / "java").is_file()), None)
    if old is None:
        pytest.skip("no Java 17 installed to test with")
    monkeypatch.setenv("ES_JAVA_HOME", str(old))
    with pytest.raises(HarnessError, match=r"ES_JAVA_HOME=.*Java 17.*21\+"):
        ElasticsearchServer(name="old-java").start()


@pytest.mark.integration
@pytest.mark.parametrize("which", ["http_port", "transport_port"])
def test_taken_port_is_named(which):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        port = sock.getsockname()[1]
        with pytest.raises(HarnessError, match=rf"127\.0\.0\.1:{port}\b.*already taken"):
            ElasticsearchServer(name="taken-port", **{which: port}).start()


@pytest.mark.integration
def test_failed_start_reports_elasticsearch_reason():
    server = ElasticsearchServer(
        name="bad-setting", fresh=True, extra_settings={"this.setting.does.not.exist": "1"}
    )
    try:
        with pytest.raises(HarnessError) as info:
            server.start()
        message = str(info.value)
        assert "unknown setting [this.setting.does.not.exist]" in message
        assert "Elasticsearch failed to start" in message
        assert "console.log" in message  # the log tail is part of the error
        assert server.process is not None and not server.process.alive()
    finally:
        server.stop(remove_run_dir=True)
