"""The Django oracle: random queries run through Django and Flash DB, answers compared.

``make difftest`` runs it at length (``python -m tests.oracle``);
tests/test_django_oracle.py runs a reduced form in ``make test``.
"""
