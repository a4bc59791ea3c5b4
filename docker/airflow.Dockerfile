# Airflow with this provider installed and the example DAGs baked in.
# Build from the repository root:  docker build -f docker/airflow.Dockerfile -t airflow-llmops .
ARG AIRFLOW_VERSION=3.3.2
FROM apache/airflow:${AIRFLOW_VERSION}-python3.11
ARG AIRFLOW_VERSION
COPY --chown=airflow:root pyproject.toml README.md /opt/airflow-provider-llmops/
COPY --chown=airflow:root airflow_provider_llmops /opt/airflow-provider-llmops/airflow_provider_llmops
# Pin Airflow to the base image's version so the provider never upgrades it underneath.
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" /opt/airflow-provider-llmops
COPY --chown=airflow:root dags/ /opt/airflow/dags/
