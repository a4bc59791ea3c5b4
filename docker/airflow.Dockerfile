# syntax=docker/dockerfile:1
# Airflow 3.3 with this provider installed and the example DAGs baked in.
# Build from the repository root:  docker build -f docker/airflow.Dockerfile -t llmops-airflow .
#
# PROVIDER_EXTRAS picks the provider's extras (pyproject.toml): `s3` (DVC remotes and s3:// URIs on
# S3 or MinIO) is enough for workers that launch training pods and deploy prebuilt packages; the
# compose stack adds `serving` (packaging models for Triton in the task) and `train` (the local
# training launcher). Everything is pinned by constraints.txt, the file the tests install with.
ARG AIRFLOW_VERSION=3.3.2
ARG PYTHON_VERSION=3.11
FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}
ARG AIRFLOW_VERSION
ARG PROVIDER_EXTRAS=s3
COPY --chown=airflow:root pyproject.toml README.md constraints.txt /opt/airflow-provider-llmops/
COPY --chown=airflow:root airflow_provider_llmops /opt/airflow-provider-llmops/airflow_provider_llmops
# Airflow pinned to the base image's version so the provider never upgrades it underneath.
RUN pip install --no-cache-dir -c /opt/airflow-provider-llmops/constraints.txt \
        "apache-airflow==${AIRFLOW_VERSION}" "/opt/airflow-provider-llmops[${PROVIDER_EXTRAS}]" \
    && python -c "import airflow_provider_llmops.get_provider_info as p; print(p.get_provider_info()['package-name'])"
COPY --chown=airflow:root dags/ /opt/airflow/dags/
# Mount points of docker/compose.yaml, group-0 writable (Airflow runs with gid 0) so that an empty named
# volume mounted there starts writable: the Triton model repository, training outputs, the SQLite state.
USER 0
RUN mkdir -p /models /opt/airflow/runs /opt/airflow/state \
    && chown airflow:0 /models /opt/airflow/runs /opt/airflow/state \
    && chmod 2775 /models /opt/airflow/runs /opt/airflow/state
USER 50000
