"""Provider metadata read by Airflow's ProvidersManager through the ``apache_airflow_provider`` entry point.

Connection form behaviour is declared here (``conn-fields`` and ``ui-field-behaviour``), which is
how Airflow 3.2+ builds the connection form without importing the hooks.
"""

from __future__ import annotations

from airflow_provider_llmops import __version__

PACKAGE = "airflow_provider_llmops"


def get_provider_info() -> dict:
    return {
        "package-name": "airflow-provider-llmops",
        "name": "LLMOps",
        "description": "DVC data versioning, DeepSpeed fine-tuning on Kubernetes, Triton Inference Server "
        "deployment and Elasticsearch kNN indexing for Apache Airflow.",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "DVC",
                "external-doc-url": "https://dvc.org/doc",
                "tags": ["software"],
            },
            {
                "integration-name": "Triton Inference Server",
                "external-doc-url": "https://docs.nvidia.com/deeplearning/triton-inference-server/",
                "tags": ["software"],
            },
            {
                "integration-name": "DeepSpeed",
                "external-doc-url": "https://www.deepspeed.ai/",
                "tags": ["software"],
            },
        ],
        "hooks": [
            {"integration-name": "DVC", "python-modules": [f"{PACKAGE}.hooks.dvc"]},
            {"integration-name": "Triton Inference Server", "python-modules": [f"{PACKAGE}.hooks.triton"]},
        ],
        "operators": [
            {"integration-name": "DVC", "python-modules": [f"{PACKAGE}.operators.dvc"]},
            {"integration-name": "DeepSpeed", "python-modules": [f"{PACKAGE}.operators.deepspeed"]},
            {
                "integration-name": "Triton Inference Server",
                "python-modules": [f"{PACKAGE}.operators.triton"],
            },
        ],
        "sensors": [
            {"integration-name": "DVC", "python-modules": [f"{PACKAGE}.sensors.dvc"]},
            {"integration-name": "Triton Inference Server", "python-modules": [f"{PACKAGE}.sensors.triton"]},
        ],
        "triggers": [
            {"integration-name": "DVC", "python-modules": [f"{PACKAGE}.triggers.dvc"]},
            {"integration-name": "Triton Inference Server", "python-modules": [f"{PACKAGE}.triggers.triton"]},
        ],
        "asset-uris": [
            {"schemes": ["dvc", "dvc-review"], "handler": f"{PACKAGE}.assets.dvc.sanitize_uri"},
            {"schemes": ["triton"], "handler": f"{PACKAGE}.assets.triton.sanitize_uri"},
        ],
        "connection-types": [
            {
                "hook-class-name": f"{PACKAGE}.hooks.dvc.DvcHook",
                "hook-name": "DVC Project",
                "connection-type": "llmops_dvc",
                "conn-fields": {
                    "repo": {
                        "label": "Repository",
                        "schema": {"type": ["string", "null"]},
                        "description": "Git URL or local path of the DVC project.",
                    },
                    "rev": {
                        "label": "Default rev",
                        "schema": {"type": ["string", "null"], "default": "main"},
                        "description": "Branch, tag or commit used when a task gives none.",
                    },
                    "remote": {
                        "label": "DVC remote name",
                        "schema": {"type": ["string", "null"]},
                        "description": "Name of the DVC remote to pull from and push to (default: the project's).",
                    },
                    "remote_url": {
                        "label": "DVC remote URL",
                        "schema": {"type": ["string", "null"]},
                        "description": "Overrides the remote's URL, e.g. s3://bucket/dvc or /mnt/dvc-store.",
                    },
                    "git_remote": {
                        "label": "Git remote",
                        "schema": {"type": ["string", "null"], "default": "origin"},
                        "description": "Git remote that new versions (commits and tags) are pushed to.",
                    },
                    "git_user_name": {
                        "label": "Git author name",
                        "schema": {"type": ["string", "null"]},
                        "description": "Identity for the commits and tags of new versions (default: git config).",
                    },
                    "git_user_email": {
                        "label": "Git author email",
                        "schema": {"type": ["string", "null"]},
                    },
                },
                # Other DVC remote settings (region, endpointurl, ...) go in the extra field as
                # {"remote_config": {...}}; login/password become the remote's credentials.
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port", "host"],
                    "relabeling": {
                        "login": "Remote access key / user",
                        "password": "Remote secret key / password",
                    },
                    "placeholders": {
                        "repo": "https://github.com/org/datasets.git or /srv/datasets",
                        "rev": "main",
                        "remote_url": "s3://my-bucket/dvc-store",
                    },
                },
            },
            {
                "hook-class-name": f"{PACKAGE}.hooks.triton.TritonHook",
                "hook-name": "Triton Inference Server",
                "connection-type": "llmops_triton",
                "conn-fields": {
                    "grpc_port": {
                        "label": "gRPC port",
                        "schema": {"type": ["integer", "null"]},
                        "description": "Triton's gRPC port (default 8001).",
                    },
                    "model_repository": {
                        "label": "Model repository",
                        "schema": {"type": ["string", "null"]},
                        "description": "Path or URI of the model repository the server watches.",
                    },
                    "timeout": {
                        "label": "Timeout (seconds)",
                        "schema": {"type": ["number", "null"], "default": 60},
                        "description": "Network timeout for each request to Triton.",
                    },
                    "auth_header": {
                        "label": "Auth header",
                        "schema": {"type": ["string", "null"]},
                        "description": "Header that carries the password for --http-restricted-api "
                        "(default: Authorization: Bearer <password>).",
                    },
                },
                "ui-field-behaviour": {
                    "hidden-fields": ["login", "extra"],
                    "relabeling": {
                        "port": "HTTP port",
                        "schema": "Scheme (http or https)",
                        "password": "Token (optional)",
                    },
                    "placeholders": {
                        "host": "triton.internal",
                        "port": "8000",
                        "schema": "http",
                        "model_repository": "/models or s3://bucket/models",
                        "auth_header": "Authorization",
                    },
                },
            },
        ],
    }
