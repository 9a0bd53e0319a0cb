"""The composition root: from Settings, everything a process holds — the database (an embedded PostgreSQL in dev
and test when no DB_URI is given), a client per configured provider, and the services built on them — opened
together and closed in reverse order. It knows nothing of HTTP: the app enters it while it serves
(app/http/factory.py), and any other process uses it the same way:

    async with open_services(settings) as services:
        await services.auth.register(...)
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Gauge

from app.database import Database, PoolSettings
from app.dev.embedded_postgres import EmbeddedPostgres
from app.runtime.migrations import head_revision, older_revisions
from app.settings import PROVIDERS, ProviderName, Settings, new_token_key, parse_token_keys
from app.src.api.auth.service import AuthPolicy, AuthService
from app.src.api.billing.service import BillingPolicy, BillingService
from app.src.api.catalog.mirror import CatalogMirror
from app.src.api.catalog.service import CatalogService
from app.src.api.catalog.sync import CatalogSync, SyncPolicy
from app.src.api.health.readiness import ReadinessCheck
from app.src.api.idempotency.keys import IdempotencyKeys
from app.src.api.maintenance.cleanup import Cleanup, Retention
from app.src.api.messaging.dispatcher import DispatchPolicy
from app.src.api.messaging.outbox import Outbox
from app.src.api.payments_provider.charges import StripeCharges
from app.src.encryption.passwords import PasswordHasher
from app.src.encryption.tokens import TokenKeyRing
from app.src.resilience.client import ProviderClient
from app.src.resilience.metrics import ProviderMetrics
from app.src.utils.logs import module_logger

_log = module_logger("bootstrap")


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    registry: CollectorRegistry  # the process's metrics; the root adds its providers' series
    database: Database
    providers: Mapping[ProviderName, ProviderClient]  # a client for each provider whose URL is set
    auth: AuthService
    billing: BillingService
    idempotency: IdempotencyKeys
    catalog: CatalogService  # reads from the mirror in memory, which only a serving process follows
    catalog_sync: CatalogSync | None  # None without a catalog provider
    readiness: ReadinessCheck
    cleanup: Cleanup
    outbox: Outbox
    dispatch: DispatchPolicy  # how the worker sends the outbox's messages


@asynccontextmanager
async def open_services(
    settings: Settings, registry: CollectorRegistry | None = None, *, serving: bool = False
) -> AsyncIterator[Services]:
    """Everything a process holds; `serving` (the API): the catalog mirror is warmed and followed too."""
    registry = registry or CollectorRegistry(auto_describe=True)
    async with AsyncExitStack() as stack:
        database = await stack.enter_async_context(_database(settings))
        in_use = Gauge("database_read_connections_in_use", "Read connections taken from the pool", registry=registry)
        in_use.set_function(database.read_connections_in_use)
        stack.callback(registry.unregister, in_use)
        provider_metrics = ProviderMetrics(registry)
        stack.callback(registry.unregister, provider_metrics)
        providers = {}
        for name in PROVIDERS:
            if (client := _provider_client(settings, name, provider_metrics)) is not None:
                providers[name] = await stack.enter_async_context(client)
        hasher = PasswordHasher(settings.password_hash_concurrency, max_waiting=settings.password_hash_queue)
        stack.push_async_callback(asyncio.to_thread, hasher.close)
        outbox = Outbox(settings.outbox_max_pending, registry)
        stack.callback(outbox.unregister, registry)
        mirror = CatalogMirror(database, settings.catalog_poll_seconds)
        if serving:
            await stack.enter_async_context(mirror.follow(registry))
        yield Services(
            settings=settings,
            registry=registry,
            database=database,
            providers=providers,
            auth=_auth_service(settings, database, hasher, outbox),
            billing=_billing(settings, database, providers.get("payments"), outbox),
            idempotency=IdempotencyKeys(database, settings.idempotency_lease_seconds),
            catalog=CatalogService(mirror),
            catalog_sync=_catalog_sync(settings, database, providers.get("catalog")),
            cleanup=Cleanup(database, _retention(settings)),
            outbox=outbox,
            dispatch=DispatchPolicy(
                concurrency=settings.outbox_concurrency,
                max_attempts=settings.outbox_max_attempts,
                backoff_base=settings.outbox_backoff_base,
                backoff_cap=settings.outbox_backoff_cap,
            ),
            readiness=ReadinessCheck(
                database, head_revision(), older_revisions(), settings.ready_timeout, settings.ready_cache_seconds
            ),
        )


@asynccontextmanager
async def _database(settings: Settings) -> AsyncIterator[Database]:
    """The pool on DB_URI, or on an embedded PostgreSQL started for the process (dev and test without DB_URI)."""
    async with AsyncExitStack() as stack:
        if settings.db_uri is not None:
            uri = settings.db_uri.get_secret_value()
        else:
            embedded = EmbeddedPostgres(settings.embedded_database_dir)
            uri = await asyncio.to_thread(embedded.start)
            stack.push_async_callback(asyncio.to_thread, embedded.stop)
            _log.info("embedded PostgreSQL started", data_dir=str(embedded.data_dir))
        pool = PoolSettings(
            size=settings.db_pool_size,
            read_size=settings.db_read_pool_size,
            connect_timeout=settings.db_connect_timeout,
            statement_timeout=settings.db_statement_timeout,
        )
        database = Database(uri, pool)
        stack.push_async_callback(database.dispose)
        await database.initialize()
        yield database


def _provider_client(settings: Settings, name: ProviderName, metrics: ProviderMetrics) -> ProviderClient | None:
    provider = settings.provider(name)
    if provider.url is None:
        return None
    return ProviderClient(name, provider.url, provider.policy, metrics, api_key=provider.api_key)


def _billing(settings: Settings, database: Database, provider: ProviderClient | None, outbox: Outbox) -> BillingService:
    secrets = settings.payments_webhook_secrets
    policy = BillingPolicy(
        reconcile_after_seconds=settings.payments_reconcile_after_seconds,
        webhook_secrets=() if secrets is None else tuple(filter(None, secrets.get_secret_value().split(","))),
    )
    return BillingService(database, None if provider is None else StripeCharges(provider), outbox, policy)


def _catalog_sync(settings: Settings, database: Database, provider: ProviderClient | None) -> CatalogSync | None:
    if provider is None:
        return None
    policy = SyncPolicy(settings.catalog_page_size, settings.catalog_max_pages, settings.catalog_versions_kept)
    return CatalogSync(database, provider, policy)


def _token_key_ring(settings: Settings) -> TokenKeyRing:
    """TOKEN_KEYS; in dev and test without it, a key made for this process (its tokens die with it)."""
    keys = settings.token_key_ring()
    if keys is None:
        _log.warning("TOKEN_KEYS is not set: tokens are sealed with a key that lasts this process only")
        keys = parse_token_keys(new_token_key())
    return TokenKeyRing(keys)


def _retention(settings: Settings) -> Retention:
    days = dt.timedelta(days=1)
    return Retention(
        job_runs=settings.job_runs_retention_days * days,
        messages=settings.outbox_retention_days * days,
        idempotency_keys=dt.timedelta(hours=settings.idempotency_retention_hours),
    )


def _auth_service(settings: Settings, database: Database, hasher: PasswordHasher, outbox: Outbox) -> AuthService:
    policy = AuthPolicy(
        access_token_seconds=settings.access_token_seconds,
        session_seconds=settings.session_seconds,
        failures_per_hour=settings.login_failures_per_hour,
        failures_per_burst=settings.login_failures_per_burst,
        burst_seconds=settings.login_burst_seconds,
        totp_issuer=settings.totp_issuer,
        login_alerts_per_hour=settings.login_alerts_per_hour,
        public_url=settings.public_url.rstrip("/"),
    )
    return AuthService(database, hasher, _token_key_ring(settings), policy, outbox)
