"""Triton model packaging (config generation, python-backend templates); never imports Airflow.

Filled in with the Triton deployment operator.
"""
