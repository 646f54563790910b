"""The documentation, and the tests that run its examples (see conftest.py)."""
