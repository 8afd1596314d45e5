"""`allocator serve`: a negotiation room in the browser (docs/serve.md).

The web side (FastAPI on uvicorn) is an optional extra, `pip install 'allocator[serve]'`;
nothing here is imported by the solve pipeline."""
