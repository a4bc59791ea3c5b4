"""Local real-service harness: Elasticsearch, Triton, Airflow and DVC on 127.0.0.1.

Run one from the command line with ``python -m dev.harness <service> [args]``; tests use the
fixtures in tests/fixtures/.
"""
