# A local stand-in for the public postgres image where no registry can be reached: Debian's PostgreSQL 15 on the
# local base (ci/local-bases), initialised on first start from POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB as
# the public image is, its data under /var/lib/postgresql/data. For local topologies only, never published: it
# takes whatever 15.x the Debian release carries (versions unpinned) and runs as Debian's postgres user.
ARG BASE_IMAGE=proving-ground/python:3.11-local
FROM ${BASE_IMAGE}
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o postgres -g postgres /var/lib/postgresql/data /var/run/postgresql
COPY --chmod=755 ci/postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
# hadolint ignore=DL3066
USER postgres
EXPOSE 5432
HEALTHCHECK --interval=2s --timeout=3s --retries=30 CMD ["pg_isready", "-h", "127.0.0.1"]
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
