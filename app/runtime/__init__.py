"""The service as processes: uvicorn with TLS and graceful shutdown, migrations, signal-safe clean-up."""
