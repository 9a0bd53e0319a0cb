"""What `make run` and the tests start beside the service: an embedded PostgreSQL, the provider simulators as
processes, a self-signed certificate. Never used by a deployed profile."""
