"""A database that cannot serve now, as the domain error callers get: 503 with Retry-After over HTTP, a kind a job
can read. Anything else (a constraint, a bug in a query) stays what it is."""

from __future__ import annotations

import asyncpg
from sqlalchemy import exc as sa

from app.src.api.common.errors import UnavailableError

BUSY_RETRY_AFTER = 1  # a free connection, or a quieter moment, is usually a second away
DOWN_RETRY_AFTER = 5  # as readiness says while the database is unreachable

_DOWN = (
    asyncpg.PostgresConnectionError,  # the connection failed or was refused by the protocol
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,  # the server ended the connection (restart, pg_terminate_backend)
)


# The connection under a statement was lost: the server ended it (a restart, pg_terminate_backend), while it sat
# idle in the pool or while the statement ran. asyncpg reports the first as "cannot switch to state ..." when the
# end is still in flight, else as ConnectionDoesNotExistError, and which one a test sees is a race. Either way a
# read may run again on a fresh connection: reads change nothing (a write is never run again).
_CONNECTION_LOST = (asyncpg.InternalClientError, asyncpg.ConnectionDoesNotExistError)


def connection_lost(error: BaseException | None) -> bool:
    """Whether `error` (or what it was raised from) is the loss of the connection under a statement."""
    while error is not None:
        if isinstance(error, _CONNECTION_LOST):
            return True
        error = error.__cause__
    return False


def as_unavailable(error: BaseException) -> UnavailableError | None:
    """The UnavailableError that `error` means for the caller, or None when it is not about the database's
    availability (and must surface as what it is)."""
    if isinstance(error, sa.TimeoutError):  # no pooled connection came free within the pool timeout
        return UnavailableError(
            "Every database connection is in use; try again shortly.", BUSY_RETRY_AFTER, code="database-busy"
        )
    cause = error.orig.__cause__ if isinstance(error, sa.DBAPIError) and error.orig is not None else error
    if isinstance(cause, asyncpg.QueryCanceledError):  # statement_timeout: the database is too slow now
        return UnavailableError(
            "The database is too busy to answer in time; try again shortly.", BUSY_RETRY_AFTER, code="database-busy"
        )
    lost = isinstance(error, sa.DBAPIError) and error.connection_invalidated
    if lost or isinstance(cause, _DOWN + _CONNECTION_LOST) or isinstance(error, OSError | TimeoutError):
        return UnavailableError(
            "The database cannot be reached; try again shortly.", DOWN_RETRY_AFTER, code="database-unavailable"
        )
    return None


def leave_block(error: BaseException | None, ending_error: Exception | None) -> None:
    """At the end of a block on the database, what the caller sees: the block's own error (it says more than
    what failed after it), else the failure to end the block; either as UnavailableError where it is that."""
    failure = error or ending_error
    if failure is not None and (unavailable := as_unavailable(failure)) is not None:
        raise unavailable from failure
    if error is None and ending_error is not None:
        raise ending_error
