"""Sensors of airflow-provider-llmops; see get_provider_info for the list."""
