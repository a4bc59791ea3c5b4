"""``python -m airflow_provider_llmops.training <job-spec.json|yaml>``: what every launcher runs."""

from __future__ import annotations

import sys

from airflow_provider_llmops.training.trainer import main

if __name__ == "__main__":
    sys.exit(main())
