"""Multi-step work (managers) and shared helpers, with no Airflow task context.

Operators hold the managers as cached properties; hooks stay clients of one system.
"""
