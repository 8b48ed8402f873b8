"""SQLite store (`sqlite:///path`): the embedded, durable default.

Group commit: operations submitted while a transaction is running queue up; the next batch runs
them all inside one `BEGIN IMMEDIATE` transaction, commits once, and only then resolves the
callers' futures. An acknowledged operation is therefore committed; a crash loses only operations
nobody was told about. Each operation checks first and writes at most one statement (the log's
totals are written once per batch), so a refused or failing operation changes nothing and leaves
the rest of its batch alone. `BEGIN IMMEDIATE` takes SQLite's write lock up front, so several
processes on one host sharing the file serialise cleanly (they wait, up to a minute, instead of
failing); a limit check and the sum update always happen under that lock. A write the file
refuses (still locked after that minute, a disk I/O error, a full disk) raises
StoreUnavailableError, a temporary error. Clearing a peer notice is the one write nobody waits
for: it rides along with the next transaction (`SqliteStore.clear_peer_notice` says why that is
safe).

Durability: WAL journal, `synchronous=FULL` by default, so every acknowledged commit is on disk
even after a power cut; group commit pays that fsync once per batch, not per operation.
`?synchronous=NORMAL` skips the fsync per commit: still safe against a process crash (SIGKILL),
but the last acknowledged commits may be lost if the machine itself goes down. FULL is the
default because "the peer was told yes" must imply "it survives"; bench/RESULTS.md gives
the cost.

Sums are TEXT and computed in Python (they may exceed 2^63). Reads use a second connection;
WAL lets them run while a write transaction is open. The schema is created and migrated by the
library (table `ilp_schema_version`).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from ilp_paychan.errors import NotAcceptedError, StoreUnavailableError
from ilp_paychan.ledger import rules
from ilp_paychan.ledger.inputs import expiry_sort_key
from ilp_paychan.ledger.records import LogTotals, PrepareOutcome, StoredTransfer
from ilp_paychan.ledger.store import DEFAULT_MAX_ENTRY, LedgerStore

SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 60_000
MAX_BATCH = 50
#: A batch of at most this many operations commits on the loop's thread (see SqliteStore).
INLINE_COMMIT_MAX = 2
#: Longest a cleared peer notice waits for a transaction to ride along with (see
#: `SqliteStore.clear_peer_notice`) before it gets one of its own.
CLEAR_DELAY = 0.05

_MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE ilp_logs (
            key TEXT PRIMARY KEY,
            incoming_fulfilled TEXT NOT NULL,
            outgoing_fulfilled TEXT NOT NULL,
            incoming_fulfilled_and_prepared TEXT NOT NULL,
            outgoing_fulfilled_and_prepared TEXT NOT NULL,
            maximum TEXT,
            minimum TEXT
        )""",
        """CREATE TABLE ilp_transfers (
            log_key TEXT NOT NULL,
            id TEXT NOT NULL,
            transfer TEXT NOT NULL,
            is_incoming INTEGER NOT NULL,
            amount TEXT NOT NULL,
            expires_at TEXT,
            state TEXT NOT NULL,
            fulfillment TEXT,
            notify_peer INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (log_key, id)
        )""",
        """CREATE INDEX ilp_transfers_prepared ON ilp_transfers (log_key, expires_at)
            WHERE state = 'prepared'""",
        "CREATE INDEX ilp_transfers_notices ON ilp_transfers (log_key) WHERE notify_peer = 1",
        """CREATE TABLE ilp_max_values (
            key TEXT PRIMARY KEY,
            value TEXT NOT NULL,
            entry TEXT NOT NULL
        )""",
    ),
    # 2: the payload a peer notice re-sends (Reject's ILP error, Fulfill's ilp data).
    2: ("ALTER TABLE ilp_transfers ADD COLUMN notice BLOB",),
}

_TRANSFER_COLUMNS = (
    "id, transfer, is_incoming, amount, expires_at, state, fulfillment, notify_peer, notice"
)
_SELECT_TOTALS = (
    "SELECT incoming_fulfilled, outgoing_fulfilled, incoming_fulfilled_and_prepared,"
    " outgoing_fulfilled_and_prepared, maximum, minimum FROM ilp_logs WHERE key = ?"
)
_UPSERT_TOTALS = (
    "INSERT INTO ilp_logs (key, incoming_fulfilled, outgoing_fulfilled,"
    " incoming_fulfilled_and_prepared, outgoing_fulfilled_and_prepared, maximum, minimum)"
    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
    " incoming_fulfilled = excluded.incoming_fulfilled,"
    " outgoing_fulfilled = excluded.outgoing_fulfilled,"
    " incoming_fulfilled_and_prepared = excluded.incoming_fulfilled_and_prepared,"
    " outgoing_fulfilled_and_prepared = excluded.outgoing_fulfilled_and_prepared,"
    " maximum = excluded.maximum, minimum = excluded.minimum"
)
_SELECT_TRANSFER = f"SELECT {_TRANSFER_COLUMNS} FROM ilp_transfers WHERE log_key = ? AND id = ?"
_INSERT_TRANSFER = (
    "INSERT INTO ilp_transfers (log_key, id, transfer, is_incoming, amount, expires_at, state)"
    " VALUES (?, ?, ?, ?, ?, ?, 'prepared') ON CONFLICT (log_key, id) DO NOTHING"
)
# The rules' prepared -> settled moves (`rules.fulfill`/`rules.cancel`) as one statement each;
# any other state falls back to the rules, which then change nothing or raise.
_FULFILL_PREPARED = (
    "UPDATE ilp_transfers SET state = 'fulfilled', fulfillment = ?, notify_peer = ?, notice = ?"
    " WHERE log_key = ? AND id = ? AND state = 'prepared' RETURNING is_incoming, amount"
)
_CANCEL_PREPARED = (
    "UPDATE ilp_transfers SET state = 'cancelled', notify_peer = ?, notice = ?"
    " WHERE log_key = ? AND id = ? AND state = 'prepared' RETURNING is_incoming, amount"
)

# A peer notice the peer acknowledged (the clears of a batch go as one executemany).
_CLEAR_NOTICE = (
    "UPDATE ilp_transfers SET notify_peer = 0, notice = NULL"
    " WHERE log_key = ? AND id = ? AND notify_peer = 1"
)

# `rules.revert_fulfillment`'s one move (incoming fulfilled -> cancelled) as one statement.
_REVERT_FULFILLED = (
    "UPDATE ilp_transfers SET state = 'cancelled', fulfillment = NULL, notify_peer = 0,"
    " notice = NULL WHERE log_key = ? AND id = ? AND state = 'fulfilled' AND is_incoming = 1"
    " RETURNING amount"
)


def path_of_url(url: str) -> tuple[str, dict[str, str]]:
    """File path and options of `sqlite:///relative.db` or `sqlite:////absolute.db`."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite" or parts.netloc:
        raise ValueError(f"an SQLite URL looks like sqlite:///path.db, got {url!r}")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise ValueError(f"SQLite URL without a file path: {url!r}")
    if path == ":memory:" or path.startswith("file:"):
        raise ValueError(
            f"SQLite needs a file (its reads use a second connection); use memory: for {url!r}"
        )
    options = {k.lower(): v[-1] for k, v in parse_qs(parts.query).items()}
    return path, options


def sqlite_settings(url: str) -> tuple[str, str]:
    """(file path, synchronous mode) of an SQLite URL; ValueError for a URL we cannot open."""
    path, options = path_of_url(url)
    synchronous = options.pop("synchronous", "FULL").upper()
    if synchronous not in ("FULL", "NORMAL", "EXTRA"):
        raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, got {synchronous!r}")
    if options:
        raise ValueError(f"unknown SQLite URL options: {', '.join(sorted(options))}")
    return path, synchronous


async def open_sqlite_store(url: str) -> SqliteStore:
    """Open (creating or migrating) the SQLite file named by `url`."""
    path, synchronous = sqlite_settings(url)
    store = SqliteStore(path, synchronous)
    try:
        await store.start()
    except BaseException:
        await store.close()
        raise
    return store


def _connect(path: str, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute(f"PRAGMA synchronous = {synchronous}")
    return conn


def _migrate(conn: sqlite3.Connection) -> None:
    """Create or upgrade the schema, under the write lock so processes do it once."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("CREATE TABLE IF NOT EXISTS ilp_schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT max(version) FROM ilp_schema_version").fetchone()
        current = row[0] or 0
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"the store's schema version {current} is newer than this library's "
                f"{SCHEMA_VERSION}; upgrade ilp-paychan"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            for statement in _MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute("INSERT INTO ilp_schema_version (version) VALUES (?)", (version,))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _transfer_of(row: tuple[Any, ...]) -> StoredTransfer:
    return StoredTransfer(
        id=row[0],
        transfer_json=row[1],
        is_incoming=bool(row[2]),
        amount=int(row[3]),
        expires_at=None if row[4] is None else datetime.fromisoformat(row[4]),
        state=row[5],
        fulfillment=row[6],
        notify_peer=bool(row[7]),
        notice=None if row[8] is None else bytes(row[8]),
    )


def _totals_of(row: tuple[Any, ...] | None) -> LogTotals:
    if row is None:
        return LogTotals()
    return LogTotals(int(row[0]), int(row[1]), int(row[2]), int(row[3]), row[4], row[5])


class _Batch:
    """One write transaction: caches each touched log's totals and writes them once at commit."""

    __slots__ = ("conn", "totals")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.totals: dict[str, LogTotals] = {}

    def log(self, key: str) -> LogTotals:
        found = self.totals.get(key)
        if found is None:
            found = _totals_of(self.conn.execute(_SELECT_TOTALS, (key,)).fetchone())
            self.totals[key] = found
        return found

    def flush(self) -> None:
        for key, t in self.totals.items():
            self.conn.execute(
                _UPSERT_TOTALS,
                (
                    key,
                    str(t.incoming_fulfilled),
                    str(t.outgoing_fulfilled),
                    str(t.incoming_fulfilled_and_prepared),
                    str(t.outgoing_fulfilled_and_prepared),
                    t.maximum,
                    t.minimum,
                ),
            )


Operation = Callable[[_Batch], Any]


class _Job:
    """One submitted operation, its caller's future, and what running it gave."""

    __slots__ = ("error", "future", "operation", "result")

    def __init__(self, operation: Operation, future: asyncio.Future[Any]) -> None:
        self.operation = operation
        self.future = future
        self.result: Any = None
        self.error: Exception | None = None


Work = Callable[[], Any]
Done = Callable[[Any, BaseException | None], None]


class _Helper:
    """The store's own thread for what may block: a COMMIT's fsync, waiting for another
    process's write lock, opening the file. Each piece of work comes back to the loop as one
    callback (`done(result, error)`), not as a future per operation."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: queue.SimpleQueue[tuple[Work, Done] | None] = queue.SimpleQueue()
        # A daemon: a store never closed must not hold up the interpreter's exit (SQLite's
        # commit is atomic whenever the process ends).
        self._thread = threading.Thread(target=self._serve, name="ilp-paychan-sqlite", daemon=True)
        self._thread.start()

    def submit(self, work: Work, done: Done) -> None:
        self._queue.put((work, done))

    async def call(self, work: Work) -> Any:
        """Run `work` on the thread and wait for its result."""
        future = self._loop.create_future()

        def done(result: Any, error: BaseException | None) -> None:
            if future.cancelled():
                return
            if error is None:
                future.set_result(result)
            else:
                future.set_exception(error)

        self.submit(work, done)
        return await future

    def stop(self) -> None:
        self._queue.put(None)

    def _serve(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            work, done = item
            result: Any = None
            error: BaseException | None = None
            try:
                result = work()
            except BaseException as exc:  # handed to the loop, which decides
                error = exc
            try:
                self._loop.call_soon_threadsafe(done, result, error)
            except RuntimeError:  # the loop is closed: nobody is waiting any more
                return


class SqliteStore(LedgerStore):
    """`LedgerStore` on one SQLite file; safe for several processes sharing the file.

    Use it from one event loop. The writer is driven by loop callbacks, not a task: operations
    submitted in one turn of the loop are collected and run as one transaction, whose
    statements execute on the loop's thread (each takes microseconds, and running them there
    avoids handing the GIL back and forth per statement). The COMMIT with its fsync runs on
    the store's helper thread while the loop answers requests and collects the next batch; one
    callback per batch brings the outcome back, and the next batch starts in the following
    turn, once the callers just answered have sent their replies. A small batch commits on the
    loop's thread instead (`INLINE_COMMIT_MAX`): with one transfer at a time there is nothing
    to overlap, and the two thread switches would cost more than the fsync. Waiting for
    another process's write lock also happens on the helper thread.
    """

    def __init__(self, path: str, synchronous: str = "FULL") -> None:
        self.path = str(Path(path))
        self.synchronous = synchronous
        self._pending: list[_Job] = []
        #: A transaction is open (its statements running or its COMMIT on the helper thread).
        self._busy = False
        #: A `_start` is scheduled on the loop.
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._helper: _Helper | None = None
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._closed = False
        self._idle: asyncio.Future[None] | None = None
        #: Peer notices to clear with the next transaction, and those it is committing.
        self._clears: list[tuple[str, str]] = []
        self._clearing: list[tuple[str, str]] = []
        self._clear_timer: asyncio.TimerHandle | None = None
        #: Write transactions committed, and the operations they carried, since the store was
        #: created: what a benchmark reads to count commits per transfer.
        self.commits = 0
        self.operations = 0

    async def start(self) -> None:
        """Open the writer (on the helper thread), create or migrate the schema, open the reader;
        called once, before any other method."""
        loop = self._loop = asyncio.get_running_loop()
        helper = self._helper = _Helper(loop)
        path, synchronous = self.path, self.synchronous
        writer: sqlite3.Connection = await helper.call(lambda: _connect(path, synchronous))
        self._writer = writer
        await helper.call(lambda: _migrate(writer))
        # The writer never waits inside SQLite: a lock held by another process is waited for
        # on the helper thread (`_begin_waiting`), so the loop is never blocked by it.
        writer.execute("PRAGMA busy_timeout = 0")
        self._reader = _connect(path, synchronous)

    # -- the writer -------------------------------------------------------------------------

    def _write(self, operation: Operation) -> asyncio.Future[Any]:
        loop = self._loop
        if self._closed or loop is None:
            raise RuntimeError("the SQLite store is closed")
        future = loop.create_future()
        self._pending.append(_Job(operation, future))
        if not (self._busy or self._scheduled):
            # Not at once: the operations submitted in this turn of the loop join the batch.
            self._scheduled = True
            loop.call_soon(self._start)
        return future

    def _start(self) -> None:
        self._scheduled = False
        if self._busy:
            return
        if not (self._pending or self._clears):
            self._wake_closer()
            return
        pending = self._pending
        if len(pending) <= MAX_BATCH:
            jobs, self._pending = pending, []
        else:
            jobs = pending[:MAX_BATCH]
            del pending[:MAX_BATCH]
        self._busy = True
        conn = self._writer
        helper = self._helper
        assert conn is not None
        assert helper is not None
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                self._finish(jobs, exc)
                return
            # Another process is writing: wait for its lock off the loop.
            helper.submit(lambda: _begin_waiting(conn), lambda _, error: self._begun(jobs, error))
            return
        self._run(jobs)

    def _begun(self, jobs: list[_Job], error: BaseException | None) -> None:
        if error is not None:
            self._finish(jobs, error)
        else:
            self._run(jobs)

    def _run(self, jobs: list[_Job]) -> None:
        """The batch's statements, on the loop's thread, inside the open transaction."""
        conn = self._writer
        helper = self._helper
        assert conn is not None
        assert helper is not None
        try:
            batch = _Batch(conn)
            if self._clears:
                self._clearing, self._clears = self._clears, []
                conn.executemany(_CLEAR_NOTICE, self._clearing)
            for job in jobs:
                # Each operation checks before it writes one statement and changes the cached
                # totals only once that succeeded, so a failing one leaves the batch as it was.
                try:
                    job.result = job.operation(batch)
                except Exception as exc:
                    job.error = exc
            batch.flush()
        except BaseException as exc:
            self._rollback()
            self._finish(jobs, exc)
            if not isinstance(exc, Exception):
                raise
            return
        if self.synchronous == "NORMAL" or len(jobs) <= INLINE_COMMIT_MAX:
            try:
                conn.execute("COMMIT")
            except BaseException as exc:
                self._rollback()
                self._finish(jobs, exc)
                if not isinstance(exc, Exception):
                    raise
                return
            self._finish(jobs, None)
        else:
            helper.submit(_committer(conn), lambda _, error: self._committed(jobs, error))

    def _committed(self, jobs: list[_Job], error: BaseException | None) -> None:
        if error is not None:
            self._rollback()
        self._finish(jobs, error)

    def _rollback(self) -> None:
        conn = self._writer
        if conn is not None and conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")

    def _finish(self, jobs: list[_Job], error: BaseException | None) -> None:
        """Hand each caller its outcome (all fail when the transaction did), then go on."""
        self._busy = False
        if error is None:
            self.commits += 1
            self.operations += len(jobs) + len(self._clearing)
            self._clearing = []
            for job in jobs:
                future = job.future
                if future.done():
                    continue
                if job.error is None:
                    future.set_result(job.result)
                else:
                    future.set_exception(_visible(job.error))
        else:
            if self._clearing:  # not committed: they go with the next transaction
                self._clears[:0] = self._clearing
                self._clearing = []
            failure = _visible(error)
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(failure)
        if self._pending:
            # The next batch (what came in meanwhile) starts in the next loop turn: first the
            # callers just answered send their replies, then its statements run and its COMMIT
            # overlaps with the peer's work on those replies.
            if not self._scheduled:
                self._scheduled = True
                assert self._loop is not None
                self._loop.call_soon(self._start)
        elif self._clears and self._clear_timer is None and not self._closed:
            loop = self._loop
            assert loop is not None
            self._clear_timer = loop.call_later(CLEAR_DELAY, self._flush_clears)
        self._wake_closer()

    def _wake_closer(self) -> None:
        idle = self._idle
        if idle is not None and not self._busy and not idle.done():
            idle.set_result(None)

    def _read(self) -> sqlite3.Connection:
        if self._reader is None:
            raise RuntimeError("the SQLite store is closed")
        return self._reader

    # -- LedgerStore ------------------------------------------------------------------------

    async def read_totals(self, key: str) -> LogTotals:
        return _totals_of(self._read().execute(_SELECT_TOTALS, (key,)).fetchone())

    async def read_transfer(self, key: str, transfer_id: str) -> StoredTransfer | None:
        row = self._read().execute(_SELECT_TRANSFER, (key, transfer_id)).fetchone()
        return None if row is None else _transfer_of(row)

    async def prepare(
        self,
        key: str,
        candidate: StoredTransfer,
        maximum: int | None,
        minimum: int | None,
    ) -> PrepareOutcome:
        expires = candidate.expires_at
        insert = (
            key,
            candidate.id,
            candidate.transfer_json,
            int(candidate.is_incoming),
            str(candidate.amount),
            None if expires is None else expiry_sort_key(expires),
        )

        def operation(batch: _Batch) -> PrepareOutcome:
            # The common case (a new id within the limits) is one INSERT; the id's existing
            # record is read only when the insert finds it or the limit refuses.
            totals = batch.log(key)
            most = rules.effective_limit(totals.maximum, maximum)
            least = rules.effective_limit(totals.minimum, minimum)
            counted = totals.copy()
            refusal: NotAcceptedError | None = None
            try:
                rules.prepare(counted, None, candidate, most, least)
            except NotAcceptedError as exc:
                refusal = exc
            if refusal is None and batch.conn.execute(_INSERT_TRANSFER, insert).rowcount == 1:
                batch.totals[key] = counted
                return PrepareOutcome.NEW
            existing = _load(batch.conn, key, candidate.id)
            if existing is None:
                assert refusal is not None
                raise refusal
            return rules.prepare(totals, existing, candidate, most, least)

        result: PrepareOutcome = await self._write(operation)
        return result

    async def fulfill(
        self,
        key: str,
        transfer_id: str,
        fulfillment: str,
        notify_peer: bool,
        notice: bytes | None = None,
    ) -> bool:
        kept = notice if notify_peer else None

        def operation(batch: _Batch) -> bool:
            totals = batch.log(key)
            moved = batch.conn.execute(
                _FULFILL_PREPARED, (fulfillment, int(notify_peer), kept, key, transfer_id)
            ).fetchone()
            if moved is not None:
                if moved[0]:
                    totals.incoming_fulfilled += int(moved[1])
                else:
                    totals.outgoing_fulfilled += int(moved[1])
                return True
            settled = _load(batch.conn, key, transfer_id)
            return rules.fulfill(totals, settled, transfer_id, fulfillment, notify_peer, kept)

        result: bool = await self._write(operation)
        return result

    async def cancel(
        self, key: str, transfer_id: str, notify_peer: bool, notice: bytes | None = None
    ) -> bool:
        kept = notice if notify_peer else None

        def operation(batch: _Batch) -> bool:
            totals = batch.log(key)
            moved = batch.conn.execute(
                _CANCEL_PREPARED, (int(notify_peer), kept, key, transfer_id)
            ).fetchone()
            if moved is not None:
                if moved[0]:
                    totals.incoming_fulfilled_and_prepared -= int(moved[1])
                else:
                    totals.outgoing_fulfilled_and_prepared -= int(moved[1])
                return True
            settled = _load(batch.conn, key, transfer_id)
            return rules.cancel(totals, settled, transfer_id, notify_peer, kept)

        result: bool = await self._write(operation)
        return result

    async def revert_fulfillment(self, key: str, transfer_id: str) -> bool:
        def operation(batch: _Batch) -> bool:
            totals = batch.log(key)
            moved = batch.conn.execute(_REVERT_FULFILLED, (key, transfer_id)).fetchone()
            if moved is not None:
                totals.incoming_fulfilled -= int(moved[0])
                totals.incoming_fulfilled_and_prepared -= int(moved[0])
                return True
            # Not an incoming fulfilled transfer: the rules refuse it or report a repeat.
            settled = _load(batch.conn, key, transfer_id)
            return rules.revert_fulfillment(totals, settled, transfer_id)

        result: bool = await self._write(operation)
        return result

    async def set_limit(self, key: str, field: str, value: str) -> None:
        def operation(batch: _Batch) -> None:
            totals = batch.log(key)
            if field == "maximum":
                totals.maximum = value
            else:
                totals.minimum = value

        await self._write(operation)

    async def list_prepared(self, key: str, expired_at: datetime | None) -> list[StoredTransfer]:
        sql = f"SELECT {_TRANSFER_COLUMNS} FROM ilp_transfers WHERE log_key = ? AND state = ?"
        params: list[Any] = [key, "prepared"]
        if expired_at is not None:
            sql += " AND expires_at <= ?"
            params.append(expiry_sort_key(expired_at))
        sql += " ORDER BY expires_at IS NULL, expires_at, id"
        return _transfers(self._read().execute(sql, params))

    async def list_peer_notices(self, key: str) -> list[StoredTransfer]:
        sql = (
            f"SELECT {_TRANSFER_COLUMNS} FROM ilp_transfers WHERE log_key = ? AND notify_peer = 1"
            " ORDER BY id"
        )
        found = _transfers(self._read().execute(sql, (key,)))
        if not (self._clears or self._clearing):
            return found
        cleared = {tid for k, tid in (*self._clears, *self._clearing) if k == key}
        return [t for t in found if t.id not in cleared]

    async def clear_peer_notice(self, key: str, transfer_id: str) -> None:
        """Queue the clear for the next transaction: it returns before the clear is committed.

        Nobody waits for a clear, and losing one costs only a harmless repeat (after a crash the
        peer is told again, and a sender answers a repeated Fulfill or Reject the same way), so
        it takes no commit of its own: it rides along with the next transaction, or gets one
        `CLEAR_DELAY` later when no other write comes. This process's `list_peer_notices` no
        longer lists it meanwhile.
        """
        if self._closed:
            raise RuntimeError("the SQLite store is closed")
        self._clears.append((key, transfer_id))
        if not (self._busy or self._scheduled or self._pending) and self._clear_timer is None:
            loop = self._loop
            assert loop is not None
            self._clear_timer = loop.call_later(CLEAR_DELAY, self._flush_clears)

    def _flush_clears(self) -> None:
        self._clear_timer = None
        if self._clears and not (self._busy or self._scheduled):
            self._start()

    async def prune_settled(self, key: str, expired_before: datetime) -> int:
        cutoff = expiry_sort_key(expired_before)

        def operation(batch: _Batch) -> int:
            gone: int = batch.conn.execute(
                "DELETE FROM ilp_transfers WHERE log_key = ? AND state <> 'prepared'"
                " AND notify_peer = 0 AND expires_at IS NOT NULL AND expires_at < ?",
                (key, cutoff),
            ).rowcount
            return gone

        result: int = await self._write(operation)
        return result

    async def read_max(self, key: str) -> str:
        row = self._read().execute("SELECT entry FROM ilp_max_values WHERE key = ?", (key,))
        found = row.fetchone()
        return DEFAULT_MAX_ENTRY if found is None else str(found[0])

    async def set_if_max(self, key: str, value: int, entry_json: str) -> str | None:
        def operation(batch: _Batch) -> str | None:
            row = batch.conn.execute(
                "SELECT value, entry FROM ilp_max_values WHERE key = ?", (key,)
            ).fetchone()
            if value <= (0 if row is None else int(row[0])):
                return None
            batch.conn.execute(
                "INSERT INTO ilp_max_values (key, value, entry) VALUES (?, ?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value, entry = excluded.entry",
                (key, str(value), entry_json),
            )
            return DEFAULT_MAX_ENTRY if row is None else str(row[1])

        result: str | None = await self._write(operation)
        return result

    async def close(self) -> None:
        """Finish the queued writes (and clears), then close both connections and the thread."""
        if self._closed:
            return
        self._closed = True
        if self._clear_timer is not None:
            self._clear_timer.cancel()
            self._clear_timer = None
        loop = self._loop
        if loop is not None:
            while self._busy or self._scheduled or self._pending or self._clears:
                if not (self._busy or self._scheduled):
                    self._start()  # only clears are left
                    if not self._busy:
                        break
                self._idle = loop.create_future()
                await self._idle
            self._idle = None
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._helper is not None:
            self._helper.stop()
            self._helper = None


def _visible(error: BaseException) -> BaseException:
    """The error a caller sees: a file SQLite cannot write now is StoreUnavailableError."""
    if not isinstance(error, sqlite3.OperationalError):
        return error
    # Locked past the busy timeout, a disk I/O error, a full disk, a read-only file: a state
    # of the store, not of this write, which may well succeed later. The message names no
    # path: a peer may be sent it.
    visible = StoreUnavailableError(
        f"the SQLite ledger store cannot write now ({error}); try again later"
    )
    visible.__cause__ = error
    return visible


def _begin_waiting(conn: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, waiting up to the busy timeout for another process's write lock (on
    the helper thread; the loop's thread never waits inside SQLite)."""
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    try:
        conn.execute("BEGIN IMMEDIATE")
    finally:
        conn.execute("PRAGMA busy_timeout = 0")


def _committer(conn: sqlite3.Connection) -> Work:
    def commit() -> None:
        conn.execute("COMMIT")

    return commit


def _load(conn: sqlite3.Connection, key: str, transfer_id: str) -> StoredTransfer | None:
    row = conn.execute(_SELECT_TRANSFER, (key, transfer_id)).fetchone()
    return None if row is None else _transfer_of(row)


def _transfers(rows: Iterable[tuple[Any, ...]]) -> list[StoredTransfer]:
    return [_transfer_of(row) for row in rows]
