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
                "integration-name": "Elasticsearch kNN",
                "external-doc-url": "https://www.elastic.co/docs/solutions/search/vector/knn",
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
            {"integration-name": "Elasticsearch kNN", "python-modules": [f"{PACKAGE}.hooks.elasticsearch"]},
        ],
        "operators": [
            {
                "integration-name": "DVC",
                "python-modules": [f"{PACKAGE}.operators.dvc", f"{PACKAGE}.operators.approval"],
            },
            {"integration-name": "DeepSpeed", "python-modules": [f"{PACKAGE}.operators.deepspeed"]},
            {
                "integration-name": "Triton Inference Server",
                "python-modules": [f"{PACKAGE}.operators.triton"],
            },
            {
                "integration-name": "Elasticsearch kNN",
                "python-modules": [f"{PACKAGE}.operators.elasticsearch"],
            },
        ],
        "sensors": [
            {"integration-name": "DVC", "python-modules": [f"{PACKAGE}.sensors.dvc"]},
            {"integration-name": "Triton Inference Server", "python-modules": [f"{PACKAGE}.sensors.triton"]},
        ],
        "triggers": [
            {"integration-name": "DVC", "python-modules": [f"{PACKAGE}.triggers.dvc"]},
            {"integration-name": "Triton Inference Server", "python-modules": [f"{PACKAGE}.triggers.triton"]},
            {"integration-name": "DeepSpeed", "python-modules": [f"{PACKAGE}.triggers.training_pod"]},
        ],
        # The review task's "Dataset review" link (pages served by the `llmops` plugin).
        "extra-links": [f"{PACKAGE}.plugins.links.DatasetReviewLink"],
        "asset-uris": [
            {"schemes": ["dvc", "dvc-review"], "handler": f"{PACKAGE}.assets.dvc.sanitize_uri"},
            {"schemes": ["triton"], "handler": f"{PACKAGE}.assets.triton.sanitize_uri"},
            {"schemes": ["model"], "handler": f"{PACKAGE}.assets.model.sanitize_uri"},
            {"schemes": ["elasticsearch"], "handler": f"{PACKAGE}.assets.elasticsearch.sanitize_uri"},
        ],
        "connection-types": [
            {
                "hook-class-name": f"{PACKAGE}.hooks.dvc.DvcHook",
                "hook-name": "DVC Project",
                "connection-type": "llmops_dvc",
                # Extra fields sit in the form's collapsed "Extra Fields" section and show
                # `schema.examples` as a pick list (their placeholder is Airflow's own "Start typing to
                # see options"). So the one required setting, the repository, is the relabelled Host
                # field, which is always visible and takes a placeholder; the hook also reads `repo`.
                "conn-fields": {
                    "rev": {
                        "label": "Default rev",
                        "schema": {"type": ["string", "null"], "default": "main", "examples": ["main", "v2"]},
                        "description": "Branch, tag or commit used when a task gives none.",
                    },
                    "subdir": {
                        "label": "DVC project folder (monorepos)",
                        "schema": {"type": ["string", "null"], "pattern": r"^[^/\\].*$", "examples": ["ml"]},
                        "description": "The folder of the repository that holds the DVC project (`dvc init "
                        "--subdir`); empty when it is the repository's root.",
                    },
                    "remote": {
                        "label": "DVC remote name",
                        "schema": {"type": ["string", "null"], "examples": ["storage"]},
                        "description": "Name of the DVC remote to pull from and push to (default: the project's).",
                    },
                    "remote_url": {
                        "label": "DVC remote URL",
                        "schema": {
                            "type": ["string", "null"],
                            "examples": ["s3://my-bucket/dvc-store", "/mnt/dvc-store"],
                        },
                        "description": "Overrides the remote's URL, e.g. s3://bucket/dvc or /mnt/dvc-store.",
                    },
                    "remote_config": {
                        "label": "DVC remote settings",
                        # A list renders as a plain text box, one entry per line: no JSON editor.
                        "schema": {"type": ["array", "null"], "items": {"type": "string"}},
                        "description": "Other settings of the DVC remote, one key=value per line, e.g. "
                        "region=eu-west-1 or endpointurl=https://minio:9000 (a JSON object in the extra "
                        "works too). Keys naming secrets (key, token, password) are masked.",
                    },
                    "git_remote": {
                        "label": "Git remote",
                        "schema": {"type": ["string", "null"], "default": "origin", "examples": ["origin"]},
                        "description": "Git remote that new versions (commits and tags) are pushed to.",
                    },
                    "git_user_name": {
                        "label": "Git author name",
                        "schema": {"type": ["string", "null"], "examples": ["Data Platform Bot"]},
                        "description": "Identity for the commits and tags of new versions (default: git config).",
                    },
                    "git_user_email": {
                        "label": "Git author email",
                        "schema": {
                            "type": ["string", "null"],
                            "format": "email",
                            "examples": ["data-bot@acme.com"],
                        },
                        "description": "Email for the commits and tags of new versions (default: git config).",
                    },
                },
                # Login/password become the DVC remote's credentials (mapped by its URL scheme).
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "port"],
                    "relabeling": {
                        "host": "Repository (required)",
                        "login": "Remote access key / user",
                        "password": "Remote secret key / password",
                    },
                    "placeholders": {
                        "host": "Git URL or local path: https://github.com/acme/datasets.git or /srv/datasets",
                        "login": "AKIA... (S3) or user",
                        "password": "secret key or password",
                        "description": "What this DVC project holds, e.g. training datasets of team X",
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


def declared_modules(*sections: str) -> list[str]:
    """The ``python-modules`` that `get_provider_info` declares in `sections` ("operators", ...), in order."""
    info = get_provider_info()
    return [
        module
        for section in sections
        for entry in info.get(section, [])
        for module in entry["python-modules"]
    ]
