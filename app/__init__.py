"""The GenMix service: FastAPI app, database layer and CLI. Never imports torch (workers do)."""
