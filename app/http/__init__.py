"""The HTTP layer: the app factory, error answers, validation, OpenAPI, authentication and request metrics."""
