"""Pydantic DTOs and contracts shared by routes and services."""
