"""Model engines: the contract in base.py, the transformers implementation beside it."""
