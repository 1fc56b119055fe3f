"""GPU tests (see conftest.py). A package, so its conftest does not shadow the parent folder's."""
