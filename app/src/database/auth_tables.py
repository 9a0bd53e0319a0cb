"""The auth tables as SQLAlchemy Core objects (migration 0002 creates them; this only describes them)."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from app.src.database.metadata import metadata

users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("email", sa.Text, nullable=False),
    sa.Column("display_name", sa.Text, nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),
    sa.Column("roles", postgresql.ARRAY(sa.Text), nullable=False),
    sa.Column("totp_secret", sa.Text),
    sa.Column("totp_enabled", sa.Boolean, nullable=False),
    sa.Column("totp_last_step", sa.BigInteger),
    sa.Column("email_verified_at", sa.DateTime(timezone=True)),
    sa.Column("verification_digest", sa.LargeBinary(32)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", postgresql.UUID(as_uuid=True), primary_key=True),
    sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("client_id", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_reason", sa.Text),
)

refresh_tokens = sa.Table(
    "refresh_tokens",
    metadata,
    sa.Column("digest", sa.LargeBinary(32), primary_key=True),
    sa.Column("session_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("sessions.id"), nullable=False),
    sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("used_at", sa.DateTime(timezone=True)),
)

login_failures = sa.Table(
    "login_failures",
    metadata,
    sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
    sa.Column("subject", sa.LargeBinary(32), nullable=False),
    sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
)

recovery_codes = sa.Table(
    "recovery_codes",
    metadata,
    sa.Column("digest", sa.LargeBinary(32), primary_key=True),
    sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("used_at", sa.DateTime(timezone=True)),
)

known_clients = sa.Table(
    "known_clients",
    metadata,
    sa.Column("user_id", sa.BigInteger, sa.ForeignKey("users.id"), primary_key=True),
    sa.Column("client_id", sa.Text, primary_key=True),
    sa.Column("first_seen_at", sa.DateTime(timezone=True), nullable=False),
)

spent_challenges = sa.Table(
    "spent_challenges",
    metadata,
    sa.Column("digest", sa.LargeBinary(32), primary_key=True),
    sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
)
