"""Tokens (AES-256-GCM with a key ring), passwords (Argon2id), TOTP, and opaque secrets."""
