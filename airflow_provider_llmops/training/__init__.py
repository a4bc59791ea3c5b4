"""Runs inside the training container (``python -m airflow_provider_llmops.training``); never imports Airflow.

The DeepSpeed entry point arrives with the training operator.
"""
