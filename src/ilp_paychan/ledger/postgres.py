"""PostgreSQL store (`postgresql://...`): one ledger shared by many processes or hosts.

Driver: asyncpg, which the project already depends on; it is asyncio-native, keeps a connection
pool and caches prepared statements per connection, and is the fastest maintained driver.

Each ledger transition is one PL/pgSQL function call. Calls that are pending at the same moment
are sent together as one statement (`ilp_apply_all`, see `PostgresStore`): one transaction, one
round trip and one WAL flush for the group; each transition in it checks before it writes, so a
refused one leaves no trace. The function locks the log's row (`SELECT ... FOR UPDATE`), so every
transition on one TransferLog key is serialised across all processes, and the limit check and the
sum update happen under that lock. The lock is held only while the function runs, not across
round trips, which keeps contention low. The rules are those of `ledger.rules`; the conformance
suite pins both. Lock order is always log row, then transfer row, so deadlocks cannot arise;
serialization failures and deadlocks are still retried in case a DBA raises the isolation level.

The one exception is `revert_fulfillment`, rare, which runs as its own short transaction in the
same lock order.

The URL may carry `?schema=NAME` to keep the tables in their own schema. The schema is created and
migrated by the library (table `ilp_schema_version`), under an advisory lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from ilp_paychan.errors import StoreUnavailableError
from ilp_paychan.ledger import rules
from ilp_paychan.ledger.records import LogTotals, PrepareOutcome, StoredTransfer
from ilp_paychan.ledger.store import DEFAULT_MAX_ENTRY, LedgerStore

SCHEMA_VERSION = 3
RETRIES = 20
MAX_BATCH = 512
#: Batches in flight at once, and how many operations must be waiting to start another.
PIPELINE_DEPTH = 2
PIPELINE_MIN = 16
#: Longest a cleared peer notice waits for a batch to ride along with (see
#: `PostgresStore.clear_peer_notice`) before it gets one of its own.
CLEAR_DELAY = 0.05
_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_MIGRATION_LOCK = 0x1C0_9A1C  # arbitrary advisory-lock id for schema migrations

_DUPLICATE = "IL001"
_OVER_LIMIT = "IL002"
_NOT_FOUND = "IL003"
_ROLLED_BACK = "IL004"
_FULFILLED = "IL005"
_COMPARE = "IL006"  # a known id whose stored JSON text differs: the client compares contents
_RETRYABLE = {"40001", "40P01"}  # serialization_failure, deadlock_detected

_OUTCOMES = {
    "new": PrepareOutcome.NEW,
    "prepared": PrepareOutcome.REPEAT_PREPARED,
    "fulfilled": PrepareOutcome.REPEAT_FULFILLED,
    "cancelled": PrepareOutcome.REPEAT_CANCELLED,
}

_LIMIT_EXPR = """CASE WHEN {col} IS NULL THEN {arg}
        WHEN {col} IN ('Infinity', '-Infinity') THEN NULL ELSE {col}::numeric END"""

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE ilp_logs (
            key text PRIMARY KEY,
            incoming_fulfilled numeric NOT NULL DEFAULT 0,
            outgoing_fulfilled numeric NOT NULL DEFAULT 0,
            incoming_fulfilled_and_prepared numeric NOT NULL DEFAULT 0,
            outgoing_fulfilled_and_prepared numeric NOT NULL DEFAULT 0,
            maximum text,
            minimum text
        )""",
        """CREATE TABLE ilp_transfers (
            log_key text NOT NULL,
            id text NOT NULL,
            transfer text NOT NULL,
            digest bytea NOT NULL,
            is_incoming boolean NOT NULL,
            amount numeric NOT NULL,
            expires_at timestamptz,
            state text NOT NULL,
            fulfillment text,
            notify_peer boolean NOT NULL DEFAULT false,
            PRIMARY KEY (log_key, id)
        )""",
        """CREATE INDEX ilp_transfers_prepared ON ilp_transfers (log_key, expires_at)
            WHERE state = 'prepared'""",
        "CREATE INDEX ilp_transfers_notices ON ilp_transfers (log_key) WHERE notify_peer",
        """CREATE TABLE ilp_max_values (
            key text PRIMARY KEY,
            value numeric NOT NULL,
            entry text NOT NULL
        )""",
        """CREATE FUNCTION ilp_lock_log(p_key text) RETURNS ilp_logs LANGUAGE plpgsql AS $$
        DECLARE l ilp_logs;
        BEGIN
            SELECT * INTO l FROM ilp_logs WHERE key = p_key FOR UPDATE;
            IF NOT FOUND THEN
                INSERT INTO ilp_logs (key) VALUES (p_key) ON CONFLICT (key) DO NOTHING;
                SELECT * INTO l FROM ilp_logs WHERE key = p_key FOR UPDATE;
            END IF;
            RETURN l;
        END $$""",
        f"""CREATE FUNCTION ilp_prepare(
            p_key text, p_id text, p_transfer text, p_digest bytea, p_incoming boolean,
            p_amount numeric, p_expires timestamptz, p_maximum numeric, p_minimum numeric
        ) RETURNS text LANGUAGE plpgsql AS $$
        DECLARE
            l ilp_logs;
            t record;
            v_limit numeric;
        BEGIN
            l := ilp_lock_log(p_key);
            SELECT state, digest INTO t FROM ilp_transfers WHERE log_key = p_key AND id = p_id;
            IF FOUND THEN
                IF t.digest = p_digest THEN
                    RETURN t.state;
                END IF;
                RETURN '{_DUPLICATE}';
            END IF;
            IF p_incoming THEN
                v_limit := {_LIMIT_EXPR.format(col="l.maximum", arg="p_maximum")};
                IF v_limit IS NOT NULL AND
                   l.incoming_fulfilled_and_prepared + p_amount - l.outgoing_fulfilled > v_limit
                THEN
                    RETURN '{_OVER_LIMIT}';
                END IF;
                UPDATE ilp_logs SET incoming_fulfilled_and_prepared =
                    incoming_fulfilled_and_prepared + p_amount WHERE key = p_key;
            ELSE
                v_limit := {_LIMIT_EXPR.format(col="l.minimum", arg="p_minimum")};
                IF v_limit IS NOT NULL AND
                   l.outgoing_fulfilled_and_prepared + p_amount - l.incoming_fulfilled > -v_limit
                THEN
                    RETURN '{_OVER_LIMIT}';
                END IF;
                UPDATE ilp_logs SET outgoing_fulfilled_and_prepared =
                    outgoing_fulfilled_and_prepared + p_amount WHERE key = p_key;
            END IF;
            INSERT INTO ilp_transfers (log_key, id, transfer, digest, is_incoming, amount,
                                       expires_at, state)
            VALUES (p_key, p_id, p_transfer, p_digest, p_incoming, p_amount, p_expires,
                    'prepared');
            RETURN 'new';
        END $$""",
        f"""CREATE FUNCTION ilp_settle(
            p_key text, p_id text, p_fulfill boolean, p_fulfillment text, p_notify boolean
        ) RETURNS text LANGUAGE plpgsql AS $$
        DECLARE
            l ilp_logs;
            t record;
        BEGIN
            l := ilp_lock_log(p_key);
            SELECT state, is_incoming, amount INTO t FROM ilp_transfers
                WHERE log_key = p_key AND id = p_id FOR UPDATE;
            IF NOT FOUND THEN
                RETURN '{_NOT_FOUND}';
            END IF;
            IF p_fulfill THEN
                IF t.state = 'fulfilled' THEN RETURN 'false'; END IF;
                IF t.state = 'cancelled' THEN RETURN '{_ROLLED_BACK}'; END IF;
                UPDATE ilp_transfers SET state = 'fulfilled', fulfillment = p_fulfillment,
                    notify_peer = p_notify WHERE log_key = p_key AND id = p_id;
                IF t.is_incoming THEN
                    UPDATE ilp_logs SET incoming_fulfilled = incoming_fulfilled + t.amount
                        WHERE key = p_key;
                ELSE
                    UPDATE ilp_logs SET outgoing_fulfilled = outgoing_fulfilled + t.amount
                        WHERE key = p_key;
                END IF;
            ELSE
                IF t.state = 'cancelled' THEN RETURN 'false'; END IF;
                IF t.state = 'fulfilled' THEN RETURN '{_FULFILLED}'; END IF;
                UPDATE ilp_transfers SET state = 'cancelled', notify_peer = p_notify
                    WHERE log_key = p_key AND id = p_id;
                IF t.is_incoming THEN
                    UPDATE ilp_logs SET incoming_fulfilled_and_prepared =
                        incoming_fulfilled_and_prepared - t.amount WHERE key = p_key;
                ELSE
                    UPDATE ilp_logs SET outgoing_fulfilled_and_prepared =
                        outgoing_fulfilled_and_prepared - t.amount WHERE key = p_key;
                END IF;
            END IF;
            RETURN 'true';
        END $$""",
        """CREATE FUNCTION ilp_set_if_max(p_key text, p_value numeric, p_entry text)
        RETURNS text LANGUAGE plpgsql AS $$
        DECLARE m record;
        BEGIN
            SELECT value, entry INTO m FROM ilp_max_values WHERE key = p_key FOR UPDATE;
            IF NOT FOUND THEN
                IF p_value <= 0 THEN RETURN NULL; END IF;
                INSERT INTO ilp_max_values (key, value, entry) VALUES (p_key, p_value, p_entry)
                    ON CONFLICT (key) DO NOTHING;
                IF FOUND THEN RETURN '{"value":"0","data":null}'; END IF;
                SELECT value, entry INTO m FROM ilp_max_values WHERE key = p_key FOR UPDATE;
            END IF;
            IF p_value <= m.value THEN RETURN NULL; END IF;
            UPDATE ilp_max_values SET value = p_value, entry = p_entry WHERE key = p_key;
            RETURN m.entry;
        END $$""",
        """CREATE FUNCTION ilp_apply(op jsonb) RETURNS text LANGUAGE plpgsql AS $$
        DECLARE l ilp_logs;
        BEGIN
            CASE op->>'op'
            WHEN 'prepare' THEN
                RETURN ilp_prepare(op->>'key', op->>'id', op->>'transfer',
                    decode(op->>'digest', 'hex'), (op->>'incoming')::boolean,
                    (op->>'amount')::numeric, (op->>'expires')::timestamptz,
                    (op->>'maximum')::numeric, (op->>'minimum')::numeric);
            WHEN 'settle' THEN
                RETURN ilp_settle(op->>'key', op->>'id', (op->>'fulfill')::boolean,
                    op->>'fulfillment', (op->>'notify')::boolean);
            WHEN 'limit' THEN
                l := ilp_lock_log(op->>'key');
                IF op->>'field' = 'maximum' THEN
                    UPDATE ilp_logs SET maximum = op->>'value' WHERE key = op->>'key';
                ELSE
                    UPDATE ilp_logs SET minimum = op->>'value' WHERE key = op->>'key';
                END IF;
                RETURN NULL;
            WHEN 'clear' THEN
                l := ilp_lock_log(op->>'key');
                UPDATE ilp_transfers SET notify_peer = false
                    WHERE log_key = op->>'key' AND id = op->>'id' AND notify_peer;
                RETURN NULL;
            WHEN 'max' THEN
                RETURN ilp_set_if_max(op->>'key', (op->>'value')::numeric, op->>'entry');
            END CASE;
        END $$""",
        """CREATE FUNCTION ilp_apply_all(ops jsonb) RETURNS text[] LANGUAGE plpgsql AS $$
        DECLARE
            results text[] := '{}';
            i integer;
        BEGIN
            FOR i IN 0 .. jsonb_array_length(ops) - 1 LOOP
                results := results || ilp_apply(ops -> i);
            END LOOP;
            RETURN results;
        END $$""",
    ),
    # 2: the payload a peer notice re-sends (Reject's ILP error, Fulfill's ilp data), stored by
    # ilp_settle with the notice and dropped with it; and the pruning of settled transfers.
    2: (
        "ALTER TABLE ilp_transfers ADD COLUMN notice bytea",
        "DROP FUNCTION ilp_settle(text, text, boolean, text, boolean)",
        f"""CREATE FUNCTION ilp_settle(
            p_key text, p_id text, p_fulfill boolean, p_fulfillment text, p_notify boolean,
            p_notice bytea
        ) RETURNS text LANGUAGE plpgsql AS $$
        DECLARE
            l ilp_logs;
            t record;
        BEGIN
            l := ilp_lock_log(p_key);
            SELECT state, is_incoming, amount INTO t FROM ilp_transfers
                WHERE log_key = p_key AND id = p_id FOR UPDATE;
            IF NOT FOUND THEN
                RETURN '{_NOT_FOUND}';
            END IF;
            IF p_fulfill THEN
                IF t.state = 'fulfilled' THEN RETURN 'false'; END IF;
                IF t.state = 'cancelled' THEN RETURN '{_ROLLED_BACK}'; END IF;
                UPDATE ilp_transfers SET state = 'fulfilled', fulfillment = p_fulfillment,
                    notify_peer = p_notify, notice = CASE WHEN p_notify THEN p_notice END
                    WHERE log_key = p_key AND id = p_id;
                IF t.is_incoming THEN
                    UPDATE ilp_logs SET incoming_fulfilled = incoming_fulfilled + t.amount
                        WHERE key = p_key;
                ELSE
                    UPDATE ilp_logs SET outgoing_fulfilled = outgoing_fulfilled + t.amount
                        WHERE key = p_key;
                END IF;
            ELSE
                IF t.state = 'cancelled' THEN RETURN 'false'; END IF;
                IF t.state = 'fulfilled' THEN RETURN '{_FULFILLED}'; END IF;
                UPDATE ilp_transfers SET state = 'cancelled', notify_peer = p_notify,
                    notice = CASE WHEN p_notify THEN p_notice END
                    WHERE log_key = p_key AND id = p_id;
                IF t.is_incoming THEN
                    UPDATE ilp_logs SET incoming_fulfilled_and_prepared =
                        incoming_fulfilled_and_prepared - t.amount WHERE key = p_key;
                ELSE
                    UPDATE ilp_logs SET outgoing_fulfilled_and_prepared =
                        outgoing_fulfilled_and_prepared - t.amount WHERE key = p_key;
                END IF;
            END IF;
            RETURN 'true';
        END $$""",
        """CREATE OR REPLACE FUNCTION ilp_apply(op jsonb) RETURNS text LANGUAGE plpgsql AS $$
        DECLARE
            l ilp_logs;
            n bigint;
        BEGIN
            CASE op->>'op'
            WHEN 'prepare' THEN
                RETURN ilp_prepare(op->>'key', op->>'id', op->>'transfer',
                    decode(op->>'digest', 'hex'), (op->>'incoming')::boolean,
                    (op->>'amount')::numeric, (op->>'expires')::timestamptz,
                    (op->>'maximum')::numeric, (op->>'minimum')::numeric);
            WHEN 'settle' THEN
                RETURN ilp_settle(op->>'key', op->>'id', (op->>'fulfill')::boolean,
                    op->>'fulfillment', (op->>'notify')::boolean, decode(op->>'notice', 'hex'));
            WHEN 'limit' THEN
                l := ilp_lock_log(op->>'key');
                IF op->>'field' = 'maximum' THEN
                    UPDATE ilp_logs SET maximum = op->>'value' WHERE key = op->>'key';
                ELSE
                    UPDATE ilp_logs SET minimum = op->>'value' WHERE key = op->>'key';
                END IF;
                RETURN NULL;
            WHEN 'clear' THEN
                l := ilp_lock_log(op->>'key');
                UPDATE ilp_transfers SET notify_peer = false, notice = NULL
                    WHERE log_key = op->>'key' AND id = op->>'id' AND notify_peer;
                RETURN NULL;
            WHEN 'prune' THEN
                l := ilp_lock_log(op->>'key');
                DELETE FROM ilp_transfers WHERE log_key = op->>'key' AND state <> 'prepared'
                    AND NOT notify_peer AND expires_at < (op->>'before')::timestamptz;
                GET DIAGNOSTICS n = ROW_COUNT;
                RETURN n::text;
            WHEN 'max' THEN
                RETURN ilp_set_if_max(op->>'key', (op->>'value')::numeric, op->>'entry');
            END CASE;
        END $$""",
    ),
    # 3: the transfer path in one call per log and batch (`ilp_run`): the log row locked and
    # written once per batch instead of once per operation, one statement per operation, the
    # peer notices' clears as one statement, arrays instead of JSON. A re-prepare compares the
    # stored JSON text (the client compares key-order-free when that differs), so the digest is
    # no longer needed.
    3: (
        "ALTER TABLE ilp_transfers ALTER COLUMN digest DROP NOT NULL",
        f"""CREATE FUNCTION ilp_run(
            p_key text, p_kinds text[], p_ids text[], p_transfers text[], p_incoming boolean[],
            p_amounts numeric[], p_expires timestamptz[], p_maximums numeric[],
            p_minimums numeric[], p_fulfillments text[], p_notify boolean[], p_notices bytea[],
            p_clears text[]
        ) RETURNS text[] LANGUAGE plpgsql AS $$
        DECLARE
            l ilp_logs;
            t record;
            n integer := coalesce(array_length(p_ids, 1), 0);
            results text[] := array_fill(NULL::text, ARRAY[n]);
            v_if numeric;
            v_of numeric;
            v_ifap numeric;
            v_ofap numeric;
            v_limit numeric;
            v_amount numeric;
            v_over boolean;
            v_changed boolean := false;
            r text;
        BEGIN
            l := ilp_lock_log(p_key);
            v_if := l.incoming_fulfilled;
            v_of := l.outgoing_fulfilled;
            v_ifap := l.incoming_fulfilled_and_prepared;
            v_ofap := l.outgoing_fulfilled_and_prepared;
            IF p_clears IS NOT NULL THEN
                UPDATE ilp_transfers SET notify_peer = false, notice = NULL
                    WHERE log_key = p_key AND id = ANY (p_clears) AND notify_peer;
            END IF;
            FOR i IN 1 .. n LOOP
                r := NULL;
                IF p_kinds[i] = 'p' THEN
                    v_amount := p_amounts[i];
                    IF p_incoming[i] THEN
                        v_limit := {_LIMIT_EXPR.format(col="l.maximum", arg="p_maximums[i]")};
                        v_over := v_limit IS NOT NULL AND v_ifap + v_amount - v_of > v_limit;
                    ELSE
                        v_limit := {_LIMIT_EXPR.format(col="l.minimum", arg="p_minimums[i]")};
                        v_over := v_limit IS NOT NULL AND v_ofap + v_amount - v_if > -v_limit;
                    END IF;
                    IF NOT v_over THEN
                        INSERT INTO ilp_transfers (log_key, id, transfer, is_incoming, amount,
                                                   expires_at, state)
                        VALUES (p_key, p_ids[i], p_transfers[i], p_incoming[i], v_amount,
                                p_expires[i], 'prepared')
                        ON CONFLICT (log_key, id) DO NOTHING;
                        IF FOUND THEN
                            IF p_incoming[i] THEN
                                v_ifap := v_ifap + v_amount;
                            ELSE
                                v_ofap := v_ofap + v_amount;
                            END IF;
                            v_changed := true;
                            r := 'new';
                        END IF;
                    END IF;
                    IF r IS NULL THEN
                        SELECT state, transfer, is_incoming INTO t FROM ilp_transfers
                            WHERE log_key = p_key AND id = p_ids[i];
                        IF NOT FOUND THEN
                            r := '{_OVER_LIMIT}';
                        ELSIF t.transfer = p_transfers[i] AND t.is_incoming = p_incoming[i] THEN
                            r := t.state;
                        ELSE
                            r := '{_COMPARE}';
                        END IF;
                    END IF;
                ELSE
                    IF p_kinds[i] = 'f' THEN
                        UPDATE ilp_transfers SET state = 'fulfilled',
                            fulfillment = p_fulfillments[i], notify_peer = p_notify[i],
                            notice = CASE WHEN p_notify[i] THEN p_notices[i] END
                            WHERE log_key = p_key AND id = p_ids[i] AND state = 'prepared'
                            RETURNING is_incoming, amount INTO t;
                    ELSE
                        UPDATE ilp_transfers SET state = 'cancelled', notify_peer = p_notify[i],
                            notice = CASE WHEN p_notify[i] THEN p_notices[i] END
                            WHERE log_key = p_key AND id = p_ids[i] AND state = 'prepared'
                            RETURNING is_incoming, amount INTO t;
                    END IF;
                    IF FOUND THEN
                        IF p_kinds[i] = 'f' THEN
                            IF t.is_incoming THEN
                                v_if := v_if + t.amount;
                            ELSE
                                v_of := v_of + t.amount;
                            END IF;
                        ELSIF t.is_incoming THEN
                            v_ifap := v_ifap - t.amount;
                        ELSE
                            v_ofap := v_ofap - t.amount;
                        END IF;
                        v_changed := true;
                        r := 'true';
                    ELSE
                        SELECT state INTO t FROM ilp_transfers
                            WHERE log_key = p_key AND id = p_ids[i];
                        IF NOT FOUND THEN
                            r := '{_NOT_FOUND}';
                        ELSIF p_kinds[i] = 'f' THEN
                            r := CASE t.state WHEN 'fulfilled' THEN 'false'
                                 ELSE '{_ROLLED_BACK}' END;
                        ELSE
                            r := CASE t.state WHEN 'cancelled' THEN 'false'
                                 ELSE '{_FULFILLED}' END;
                        END IF;
                    END IF;
                END IF;
                results[i] := r;
            END LOOP;
            IF v_changed THEN
                UPDATE ilp_logs SET incoming_fulfilled = v_if, outgoing_fulfilled = v_of,
                    incoming_fulfilled_and_prepared = v_ifap,
                    outgoing_fulfilled_and_prepared = v_ofap
                    WHERE key = p_key;
            END IF;
            RETURN results;
        END $$""",
    ),
}

_TRANSFER_COLUMNS = (
    "id, transfer, is_incoming, amount, expires_at, state, fulfillment, notify_peer, notice"
)


def split_url(url: str) -> tuple[str, str | None]:
    """The URL for asyncpg and the `schema` option taken out of it."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = None
    kept = []
    for name, value in query:
        if name == "schema":
            schema = value
        else:
            kept.append((name, value))
    if schema is not None and not _SCHEMA_NAME.match(schema):
        raise ValueError(f"schema must be a lowercase SQL identifier, got {schema!r}")
    scheme = "postgresql" if parts.scheme == "postgres" else parts.scheme
    return urlunsplit((scheme, parts.netloc, parts.path, urlencode(kept), parts.fragment)), schema


async def open_postgres_store(url: str, *, max_connections: int = 10) -> PostgresStore:
    """Connect a pool to the database named by `url` and create or migrate the schema."""
    dsn, schema = split_url(url)
    settings = {"search_path": schema} if schema else {}
    first = await asyncpg.connect(dsn)
    try:
        await _migrate(first, schema)
    finally:
        await first.close()
    pool = await asyncpg.create_pool(
        dsn, min_size=1, max_size=max_connections, server_settings=settings
    )
    return PostgresStore(pool)


async def _migrate(conn: Any, schema: str | None) -> None:
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        if schema:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(f'SET LOCAL search_path TO "{schema}"')
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS ilp_schema_version (version integer NOT NULL)"
        )
        current = await conn.fetchval("SELECT max(version) FROM ilp_schema_version") or 0
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"the store's schema version {current} is newer than this library's "
                f"{SCHEMA_VERSION}; upgrade ilp-paychan"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[version]:
                await conn.execute(statement)
            await conn.execute("INSERT INTO ilp_schema_version (version) VALUES ($1)", version)


def _transfer_of(row: Any) -> StoredTransfer:
    return StoredTransfer(
        id=row[0],
        transfer_json=row[1],
        is_incoming=row[2],
        amount=int(row[3]),
        expires_at=row[4],
        state=row[5],
        fulfillment=row[6],
        notify_peer=row[7],
        notice=None if row[8] is None else bytes(row[8]),
    )


#: `ilp_run`'s call; its arrays are the columns of `_Job.row`, then the clears.
_RUN = (
    "SELECT ilp_run($1, $2::text[], $3::text[], $4::text[], $5::boolean[], $6::numeric[],"
    " $7::timestamptz[], $8::numeric[], $9::numeric[], $10::text[], $11::boolean[],"
    " $12::bytea[], $13::text[])"
)
_RUN_COLUMNS = 11
_NO_ROWS: list[list[Any]] = [[] for _ in range(_RUN_COLUMNS)]


class _Job:
    """One submitted write: an `ilp_run` row (a transfer's prepare, fulfil or cancel) or an
    `ilp_apply` operation (everything else), and its caller's future."""

    __slots__ = ("future", "key", "op", "row")

    def __init__(
        self,
        key: str,
        row: tuple[Any, ...] | None,
        op: dict[str, Any] | None,
        future: asyncio.Future[str | None],
    ) -> None:
        self.key = key
        self.row = row
        self.op = op
        self.future = future


class PostgresStore(LedgerStore):
    """`LedgerStore` on a PostgreSQL database through an asyncpg pool.

    Writes are grouped: while a batch runs, newly submitted operations queue up, and the next
    batch sends them together: a transfer's prepare, fulfil and cancel as one `ilp_run` call
    per log (one statement, i.e. one transaction, one round trip and one WAL flush; the log's
    row is locked and written once), anything else in one `ilp_apply_all` call. Operations in
    a batch were all pending at once, so any order is a valid serial order. Each operation
    checks before it writes and reports refusals as result codes, so one refused operation
    leaves the rest of its batch untouched. Each statement locks one log row at a time (or
    the tracker rows in key order), so two processes' batches never wait for each other in a
    cycle. Up to `PIPELINE_DEPTH` batches are in flight on separate connections, so the next
    batch travels and is parsed while the previous one commits.

    Clearing a peer notice takes no commit of its own (see `clear_peer_notice`).
    """

    def __init__(self, pool: Any) -> None:
        self._pool = pool
        self._pending: list[_Job] = []
        #: Batches in flight (each on its own pool connection).
        self._running = 0
        self._runners: set[asyncio.Task[None]] = set()
        #: Peer notices to clear with the next batch, and those batches in flight carry.
        self._clears: list[tuple[str, str]] = []
        self._clearing: set[tuple[str, str]] = set()
        self._clear_timer: asyncio.TimerHandle | None = None
        #: Connections the runners keep between batches (at most PIPELINE_DEPTH).
        self._writers: list[Any] = []
        self._closed = False
        #: Write transactions committed, and the operations they carried, since the store was
        #: created: what a benchmark reads to count commits per transfer.
        self.commits = 0
        self.operations = 0

    def _submit(self, job: _Job) -> asyncio.Future[str | None]:
        if self._closed:
            raise RuntimeError("the PostgreSQL store is closed")
        self._pending.append(job)
        running = self._running
        if running == 0 or (running < PIPELINE_DEPTH and len(self._pending) >= PIPELINE_MIN):
            self._spawn(flush=False)
        return job.future

    def _spawn(self, *, flush: bool) -> None:
        self._running += 1
        task = asyncio.get_running_loop().create_task(self._drain(flush))
        self._runners.add(task)
        task.add_done_callback(self._runners.discard)

    async def _apply(self, op: dict[str, Any]) -> str | None:
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        return await self._submit(_Job(op["key"], None, op, future))

    async def _run(self, key: str, row: tuple[Any, ...]) -> str | None:
        future: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        return await self._submit(_Job(key, row, None, future))

    async def _drain(self, flush: bool) -> None:
        conn: Any = None
        try:
            while self._pending or flush:
                flush = False
                jobs = self._pending[:MAX_BATCH]
                del self._pending[:MAX_BATCH]
                if conn is None:
                    try:
                        conn = await self._writer()
                    except Exception as exc:
                        _fail(jobs, _visible(exc))
                        continue
                await self._run_batch(conn, jobs)
                if not _usable(conn):
                    await self._discard(conn)
                    conn = None
        finally:
            if conn is not None and _usable(conn):
                self._writers.append(conn)
            self._running -= 1
            if self._clears and self._running == 0 and self._clear_timer is None:
                self._clear_timer = asyncio.get_running_loop().call_later(
                    CLEAR_DELAY, self._flush_clears
                )

    async def _writer(self) -> Any:
        """A connection for one runner: kept between batches (a pool's release would reset the
        session, one more round trip per batch), from the pool when none is kept."""
        while self._writers:
            conn = self._writers.pop()
            if _usable(conn):
                return conn
            await self._discard(conn)
        return await self._pool.acquire()

    async def _discard(self, conn: Any) -> None:
        """Give a broken connection back to the pool (which closes it), if it is not back yet."""
        with contextlib.suppress(Exception):
            await self._pool.release(conn)

    async def _run_batch(self, conn: Any, jobs: list[_Job]) -> None:
        """One statement per log with transfer work (its clears ride along), one for the rest;
        each statement's failure fails only its own operations."""
        clears, self._clears = self._clears, []
        self._clearing.update(clears)
        by_key: dict[str, list[_Job]] = {}
        others: list[_Job] = []
        for job in jobs:
            if job.row is None:
                others.append(job)
            else:
                by_key.setdefault(job.key, []).append(job)
        cleared: dict[str, list[str]] = {}
        for key, transfer_id in clears:
            cleared.setdefault(key, []).append(transfer_id)
        for key in sorted(by_key.keys() | cleared.keys()):
            group = by_key.get(key, [])
            ids = cleared.get(key)
            columns = list(zip(*(job.row for job in group), strict=True)) if group else _NO_ROWS
            try:
                results = await self._call("fetchval", _RUN, key, *columns, ids, on=conn)
            except Exception as exc:
                _fail(group, exc)
                if ids:  # not committed: they go with the next batch
                    self._clears.extend((key, transfer_id) for transfer_id in ids)
            else:
                self.commits += 1
                self.operations += len(group) + (len(ids) if ids else 0)
                _resolve(group, results)
            if ids:
                self._clearing.difference_update((key, transfer_id) for transfer_id in ids)
        if others:
            others.sort(key=_lock_order)
            payload = json.dumps([job.op for job in others], separators=(",", ":"))
            try:
                results = await self._call(
                    "fetchval", "SELECT ilp_apply_all($1::jsonb)", payload, on=conn
                )
            except Exception as exc:
                _fail(others, exc)
            else:
                self.commits += 1
                self.operations += len(others)
                _resolve(others, results)

    def _flush_clears(self) -> None:
        self._clear_timer = None
        if self._clears and self._running == 0 and not self._closed:
            self._spawn(flush=True)

    async def _call(self, method: str, sql: str, *args: Any, on: Any = None) -> Any:
        """Run one statement (one transaction) on the pool or connection `on`, retrying
        serialization failures and deadlocks. A server that cannot be reached raises
        StoreUnavailableError."""
        target = self._pool if on is None else on
        for attempt in range(RETRIES):
            try:
                return await getattr(target, method)(sql, *args)
            except Exception as exc:
                _raise_if_unavailable(exc)
                if not _retryable(exc) or attempt == RETRIES - 1:
                    raise
                await asyncio.sleep(0.001 * (attempt + 1))
        raise AssertionError("unreachable")

    async def read_totals(self, key: str) -> LogTotals:
        row = await self._call(
            "fetchrow",
            "SELECT incoming_fulfilled, outgoing_fulfilled, incoming_fulfilled_and_prepared,"
            " outgoing_fulfilled_and_prepared, maximum, minimum FROM ilp_logs WHERE key = $1",
            key,
        )
        if row is None:
            return LogTotals()
        return LogTotals(int(row[0]), int(row[1]), int(row[2]), int(row[3]), row[4], row[5])

    async def read_transfer(self, key: str, transfer_id: str) -> StoredTransfer | None:
        row = await self._call(
            "fetchrow",
            f"SELECT {_TRANSFER_COLUMNS} FROM ilp_transfers WHERE log_key = $1 AND id = $2",
            key,
            transfer_id,
        )
        return None if row is None else _transfer_of(row)

    async def prepare(
        self,
        key: str,
        candidate: StoredTransfer,
        maximum: int | None,
        minimum: int | None,
    ) -> PrepareOutcome:
        # Row: kind, id, transfer, incoming, amount, expires, maximum, minimum, fulfillment,
        # notify, notice (the columns of `ilp_run`).
        result = await self._run(
            key,
            (
                "p",
                candidate.id,
                candidate.transfer_json,
                candidate.is_incoming,
                candidate.amount,
                candidate.expires_at,
                maximum,
                minimum,
                None,
                None,
                None,
            ),
        )
        if result == _OVER_LIMIT:
            raise rules.over_limit(candidate)
        if result in (_COMPARE, _DUPLICATE):
            # The id is stored with other JSON text: the same content in another key order is
            # a repeat, anything else a duplicate.
            existing = await self.read_transfer(key, candidate.id)
            if existing is None:  # pruned since: the prepare now finds a free id
                return await self.prepare(key, candidate, maximum, minimum)
            return rules.prepare(LogTotals(), existing, candidate, None, None)
        return _OUTCOMES[str(result)]

    async def _settle(
        self,
        key: str,
        transfer_id: str,
        fulfillment: str | None,
        notify_peer: bool,
        notice: bytes | None,
    ) -> bool:
        result = await self._run(
            key,
            (
                "c" if fulfillment is None else "f",
                transfer_id,
                None,
                None,
                None,
                None,
                None,
                None,
                fulfillment,
                notify_peer,
                notice if notify_peer else None,
            ),
        )
        if result == _NOT_FOUND:
            raise rules.not_found(transfer_id)
        if result == _ROLLED_BACK:
            raise rules.rolled_back(transfer_id)
        if result == _FULFILLED:
            raise rules.already_fulfilled(transfer_id)
        return result == "true"

    async def fulfill(
        self,
        key: str,
        transfer_id: str,
        fulfillment: str,
        notify_peer: bool,
        notice: bytes | None = None,
    ) -> bool:
        return await self._settle(key, transfer_id, fulfillment, notify_peer, notice)

    async def cancel(
        self, key: str, transfer_id: str, notify_peer: bool, notice: bytes | None = None
    ) -> bool:
        return await self._settle(key, transfer_id, None, notify_peer, notice)

    async def revert_fulfillment(self, key: str, transfer_id: str) -> bool:
        """One short transaction of its own, not a batched function call: reverts are rare
        (a sender refused a late Fulfill) and this needs no schema change. It locks in the usual
        order, log row then transfer row, so it serialises with the batches without deadlock."""
        for attempt in range(RETRIES):
            try:
                reverted = await self._revert_once(key, transfer_id)
            except Exception as exc:
                _raise_if_unavailable(exc)
                if not _retryable(exc) or attempt == RETRIES - 1:
                    raise
                await asyncio.sleep(0.001 * (attempt + 1))
            else:
                self.commits += 1
                self.operations += 1
                return reverted
        raise AssertionError("unreachable")

    async def _revert_once(self, key: str, transfer_id: str) -> bool:
        async with self._pool.acquire() as conn, conn.transaction():
            locked = await conn.fetchrow(
                "SELECT incoming_fulfilled, incoming_fulfilled_and_prepared FROM ilp_lock_log($1)",
                key,
            )
            row = await conn.fetchrow(
                f"SELECT {_TRANSFER_COLUMNS} FROM ilp_transfers"
                " WHERE log_key = $1 AND id = $2 FOR UPDATE",
                key,
                transfer_id,
            )
            totals = LogTotals(
                incoming_fulfilled=int(locked[0]),
                incoming_fulfilled_and_prepared=int(locked[1]),
            )
            transfer = None if row is None else _transfer_of(row)
            if not rules.revert_fulfillment(totals, transfer, transfer_id):
                return False
            await conn.execute(
                "UPDATE ilp_transfers SET state = 'cancelled', fulfillment = NULL,"
                " notify_peer = false, notice = NULL WHERE log_key = $1 AND id = $2",
                key,
                transfer_id,
            )
            await conn.execute(
                "UPDATE ilp_logs SET incoming_fulfilled = $2::numeric,"
                " incoming_fulfilled_and_prepared = $3::numeric WHERE key = $1",
                key,
                str(totals.incoming_fulfilled),
                str(totals.incoming_fulfilled_and_prepared),
            )
            return True

    async def set_limit(self, key: str, field: str, value: str) -> None:
        await self._apply({"op": "limit", "key": key, "field": field, "value": value})

    async def list_prepared(self, key: str, expired_at: datetime | None) -> list[StoredTransfer]:
        sql = (
            f"SELECT {_TRANSFER_COLUMNS} FROM ilp_transfers WHERE log_key = $1"
            " AND state = 'prepared' AND ($2::timestamptz IS NULL OR expires_at <= $2)"
            " ORDER BY expires_at ASC NULLS LAST, id"
        )
        rows = await self._call("fetch", sql, key, expired_at)
        return [_transfer_of(row) for row in rows]

    async def list_peer_notices(self, key: str) -> list[StoredTransfer]:
        sql = (
            f"SELECT {_TRANSFER_COLUMNS} FROM ilp_transfers WHERE log_key = $1 AND notify_peer"
            " ORDER BY id"
        )
        before = self._clears_of(key)
        rows = await self._call("fetch", sql, key)
        cleared = before | self._clears_of(key)  # a clear committed while we read included
        return [t for t in map(_transfer_of, rows) if t.id not in cleared]

    def _clears_of(self, key: str) -> set[str]:
        return {tid for k, tid in (*self._clears, *self._clearing) if k == key}

    async def clear_peer_notice(self, key: str, transfer_id: str) -> None:
        """Queue the clear for the next batch: it returns before the clear is committed.

        Nobody waits for a clear, and losing one costs only a harmless repeat (after a crash the
        peer is told again, and a sender answers a repeated Fulfill or Reject the same way), so
        it takes no commit of its own: it rides along with the next batch of this log, or gets
        one `CLEAR_DELAY` later when no other write comes. This process's `list_peer_notices`
        no longer lists it meanwhile.
        """
        if self._closed:
            raise RuntimeError("the PostgreSQL store is closed")
        self._clears.append((key, transfer_id))
        if self._running == 0 and self._clear_timer is None:
            self._clear_timer = asyncio.get_running_loop().call_later(
                CLEAR_DELAY, self._flush_clears
            )

    async def prune_settled(self, key: str, expired_before: datetime) -> int:
        result = await self._apply(
            {"op": "prune", "key": key, "before": expired_before.isoformat()}
        )
        return int(result or 0)

    async def read_max(self, key: str) -> str:
        entry = await self._call("fetchval", "SELECT entry FROM ilp_max_values WHERE key = $1", key)
        return DEFAULT_MAX_ENTRY if entry is None else str(entry)

    async def set_if_max(self, key: str, value: int, entry_json: str) -> str | None:
        return await self._apply(
            {"op": "max", "key": key, "value": str(value), "entry": entry_json}
        )

    async def close(self) -> None:
        """Let queued writes (and clears) finish, then close the pool."""
        if self._closed:
            return
        self._closed = True
        if self._clear_timer is not None:
            self._clear_timer.cancel()
            self._clear_timer = None
        while self._runners:
            await asyncio.wait(set(self._runners))
        if self._clears:
            self._spawn(flush=True)
            await asyncio.wait(set(self._runners))
        writers, self._writers = self._writers, []
        for conn in writers:
            await self._discard(conn)
        await self._pool.close()


def _usable(conn: Any) -> bool:
    """Whether a connection we hold still works (a broken one goes back to the pool by
    itself, and then refuses every call)."""
    try:
        return not conn.is_closed()
    except asyncpg.InterfaceError:
        return False


def _visible(exc: Exception) -> Exception:
    """The error a caller sees: StoreUnavailableError when the server cannot be reached."""
    try:
        _raise_if_unavailable(exc)
    except StoreUnavailableError as unavailable:
        return unavailable
    return exc


def _resolve(jobs: list[_Job], results: list[str | None]) -> None:
    for job, result in zip(jobs, results, strict=True):
        if not job.future.done():
            job.future.set_result(result)


def _fail(jobs: list[_Job], error: Exception) -> None:
    for job in jobs:
        if not job.future.done():
            job.future.set_exception(error)


def _retryable(exc: Exception) -> bool:
    return isinstance(exc, asyncpg.PostgresError) and exc.sqlstate in _RETRYABLE


#: What an unreachable server looks like: refused or dropped sockets, connection exceptions
#: (SQLSTATE class 08), and a server shutting down or still starting up (57P01-57P03).
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.OperatorInterventionError,
)
_UNAVAILABLE_WORDS = {
    "ConnectionRefusedError": "connection refused",
    "ConnectionResetError": "connection reset",
    "ConnectionDoesNotExistError": "the connection closed during the operation",
    "CannotConnectNowError": "the database is starting up",
    "AdminShutdownError": "the database is shutting down",
    "CrashShutdownError": "the database is restarting after a crash",
    "TimeoutError": "no answer in time",
}


def _raise_if_unavailable(exc: Exception) -> None:
    """Raise StoreUnavailableError (chained) if `exc` means the server cannot be reached.

    The message names the cause in words only (no host, port or credentials: it may be sent
    to the peer as the reason of a refused request).
    """
    if isinstance(exc, asyncpg.exceptions.QueryCanceledError):
        return  # 57014: a statement timeout, not an outage
    if isinstance(exc, _UNAVAILABLE):
        name = type(exc).__name__
        cause = _UNAVAILABLE_WORDS.get(name, name)
        raise StoreUnavailableError(
            f"the PostgreSQL ledger store is unavailable ({cause}); try again once it is back"
        ) from exc


def _lock_order(job: _Job) -> tuple[bool, str]:
    assert job.op is not None
    return job.op["op"] == "max", job.key
