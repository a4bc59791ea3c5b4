"""Runs inside the training container (``python -m airflow_provider_llmops.training``); never imports Airflow.

`spec` (the job spec), `ds_config` (the DeepSpeed config builder) and `storage` (the output
location) need only the standard library and fsspec, so the Airflow side imports them to validate a
job before launching it; `trainer` needs the ``[train]`` extra (torch, deepspeed, transformers).
"""
