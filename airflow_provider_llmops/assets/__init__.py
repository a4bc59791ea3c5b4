"""Asset and AssetAlias builders, and the URI normaliser, of each URI scheme the provider emits.

One module per scheme (``dvc.py`` now; ``model``, ``triton`` and ``elasticsearch`` add theirs).
They are imported at DAG parse time, so they use the standard library and ``airflow.sdk`` only.
"""
