"""The provider's Airflow plugin: the dataset-review pages (API server), cheaper DAG parses.

`links` is imported by operators on workers and stays light; `review_app` (FastAPI, Markdown) is
imported by the API server only, when it builds the plugin's app; `preimport` runs in the DAG
processor, when the plugin loads.
"""
