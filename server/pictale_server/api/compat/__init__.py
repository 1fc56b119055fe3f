"""Routes in the ecosystem's dialects: OpenAI's chat/completions and KoboldCpp's API.

They run on the same runtime as the contract's routes (runs, model workers, the safety gate,
auth, limits); only the wire shapes differ. docs/compatibility.md lists every field.
"""
