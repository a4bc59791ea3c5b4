"""Triton model packaging and publishing; runs anywhere (a worker, a container) and never imports Airflow.

- :mod:`.names`: model names and versions Triton accepts (checked before any side effect).
- :mod:`.config`: ``config.pbtxt`` from a typed spec, rendered as pbtxt and JSON, validated offline.
- :mod:`.manifest`: what a training ``manifest.json`` (or a bare Hugging Face folder) says.
- :mod:`.package`: ONNX export plus python-backend model, goldens and a requirements file.
- :mod:`.publish`: writes ``<repository>/<model>/<version>/`` atomically, never overwriting.
"""
