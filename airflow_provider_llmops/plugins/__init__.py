"""What the provider adds to the Airflow UI (API server side): the dataset-review pages.

`links` is imported by operators on workers and stays light; `review_app` (FastAPI, Markdown) is
imported by the API server only, when it builds the plugin's app.
"""
