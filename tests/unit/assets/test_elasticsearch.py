"""The elasticsearch:// asset scheme: URIs and alias names."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from airflow_provider_llmops.assets.elasticsearch import check_alias_name, es_asset, sanitize_uri


def test_uri_names_cluster_and_alias():
    assert sanitize_uri(urlsplit("elasticsearch://prod/docs")).path == "/docs"
    assert es_asset("prod", "docs").uri == "elasticsearch://prod/docs"


@pytest.mark.parametrize(
    "uri", ["elasticsearch:///docs", "elasticsearch://prod/", "elasticsearch://prod/a/b"]
)
def test_bad_uris(uri):
    with pytest.raises(ValueError, match="elasticsearch URI must name"):
        sanitize_uri(urlsplit(uri))


@pytest.mark.parametrize("alias", ["", "UPPER", "with space", "a,b", "-x", "a:b", "x" * 201])
def test_bad_alias_names(alias):
    with pytest.raises(ValueError, match="alias"):
        check_alias_name(alias)
