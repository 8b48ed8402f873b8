"""Store-specific behaviour: SQLite file options and schema, PostgreSQL schema option, and the
key/value adapter's compatibility with data the reference wrote."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from ilp_paychan.errors import DuplicateIdError
from ilp_paychan.ledger import PrepareOutcome, StoreOpenError, open_backend
from ilp_paychan.ledger.sqlite import SCHEMA_VERSION

TID = "5857d460-2a46-4545-8311-5539d99e78c0"


async def test_sqlite_creates_wal_schema_with_a_version(tmp_path: Path) -> None:
    backend = await open_backend(f"sqlite:///{tmp_path}/a.db")
    await backend.close()
    with sqlite3.connect(tmp_path / "a.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT max(version) FROM ilp_schema_version").fetchone()[0] == 2


# The schema as version 1 of the library created it (kept verbatim: the upgrade must read it).
_SQLITE_V1 = (
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
    "CREATE TABLE ilp_schema_version (version INTEGER NOT NULL)",
    "INSERT INTO ilp_schema_version (version) VALUES (1)",
)
TID2 = "6857d460-2a46-4545-8311-5539d99e78c0"


async def test_sqlite_upgrades_a_version_1_file_in_place(tmp_path: Path) -> None:
    """A file written by schema version 1 opens, keeps its data and stores notice payloads."""
    path = tmp_path / "v1.db"
    expires = "2030-01-01T00:00:00.000000Z"
    body = json.dumps({"id": TID, "amount": "10", "expiresAt": "2030-01-01T00:00:00.000Z"})
    body2 = json.dumps({"id": TID2, "amount": "5", "expiresAt": "2030-01-01T00:00:00.000Z"})
    with sqlite3.connect(path) as conn:
        for statement in _SQLITE_V1:
            conn.execute(statement)
        conn.execute("INSERT INTO ilp_logs VALUES ('', '10', '0', '15', '0', NULL, NULL)")
        conn.execute(
            "INSERT INTO ilp_transfers VALUES ('', ?, ?, 1, '10', ?, 'fulfilled', 'f', 1)",
            (TID, body, expires),
        )
        conn.execute(
            "INSERT INTO ilp_transfers VALUES ('', ?, ?, 1, '5', ?, 'prepared', NULL, 0)",
            (TID2, body2, expires),
        )
    conn.close()
    backend = await open_backend(f"sqlite:///{path}")
    try:
        log = backend.get_transfer_log()
        assert await log.get_incoming_fulfilled_and_prepared() == "15"
        notices = await log.list_peer_notices()
        assert [(n["transfer"]["id"], n["notice"]) for n in notices] == [(TID, None)]
        assert await log.cancel(TID2, notify_peer=True, notice=b"\x01why") is True
        notices = await log.list_peer_notices()
        assert [(n["transfer"]["id"], n["notice"]) for n in notices] == [
            (TID, None),
            (TID2, b"\x01why"),
        ]
    finally:
        await backend.close()
    with sqlite3.connect(path) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM ilp_schema_version")]
    conn.close()
    assert versions == [1, 2]


async def test_sqlite_refuses_a_newer_schema(tmp_path: Path) -> None:
    backend = await open_backend(f"sqlite:///{tmp_path}/a.db")
    await backend.close()
    with sqlite3.connect(tmp_path / "a.db") as conn:
        conn.execute("INSERT INTO ilp_schema_version VALUES (?)", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreOpenError, match=r"a\.db\): the store's schema version \d+ is newer"):
        await open_backend(f"sqlite:///{tmp_path}/a.db")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("{}/a.db?synchronous=OFF", "synchronous"),
        ("{}/a.db?cache=shared", "unknown SQLite URL options"),
        ("sqlite:///:memory:", "needs a file"),
        ("sqlite://host/a.db", "looks like"),
    ],
)
async def test_sqlite_urls_are_checked(tmp_path: Path, query: str, message: str) -> None:
    url = query if query.startswith("sqlite") else "sqlite:///" + query.format(tmp_path)
    with pytest.raises(ValueError, match=message):
        await open_backend(url)


async def test_sqlite_normal_mode_is_accepted(tmp_path: Path) -> None:
    backend = await open_backend(f"sqlite:///{tmp_path}/a.db?synchronous=normal")
    try:
        log = backend.get_transfer_log()
        assert await log.prepare({"id": TID, "amount": "1"}, True) is PrepareOutcome.NEW
    finally:
        await backend.close()


async def test_sqlite_closed_store_refuses_work(tmp_path: Path) -> None:
    backend = await open_backend(f"sqlite:///{tmp_path}/a.db")
    await backend.close()
    with pytest.raises(RuntimeError, match="closed"):
        await backend.get_transfer_log().prepare({"id": TID, "amount": "1"}, True)


@pytest.mark.postgres
async def test_postgres_schema_option_keeps_tables_apart(postgres_url: str) -> None:
    schema = f"s_{uuid.uuid4().hex[:12]}"
    backend = await open_backend(f"{postgres_url}?schema={schema}")
    try:
        await backend.get_transfer_log("k").prepare({"id": TID, "amount": "3"}, True)
    finally:
        await backend.close()
    conn = await asyncpg.connect(postgres_url)
    try:
        found = await conn.fetchval(
            "SELECT count(*) FROM information_schema.tables"
            " WHERE table_schema = $1 AND table_name = 'ilp_transfers'",
            schema,
        )
        rows = await conn.fetchval(f'SELECT count(*) FROM "{schema}".ilp_transfers')
    finally:
        await conn.close()
    assert (found, rows) == (1, 1)


@pytest.mark.postgres
async def test_postgres_upgrades_a_version_1_schema_in_place(postgres_url: str) -> None:
    """Version 1's statements (migration 1 is never edited), then the current library."""
    from ilp_paychan.ledger.postgres import _MIGRATIONS

    schema = f"v1_{uuid.uuid4().hex[:12]}"
    body = json.dumps({"id": TID, "amount": "10", "expiresAt": "2030-01-01T00:00:00.000Z"})
    body2 = json.dumps({"id": TID2, "amount": "5", "expiresAt": "2030-01-01T00:00:00.000Z"})
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
        await conn.execute(f'SET search_path TO "{schema}"')
        await conn.execute("CREATE TABLE ilp_schema_version (version integer NOT NULL)")
        for statement in _MIGRATIONS[1]:
            await conn.execute(statement)
        await conn.execute("INSERT INTO ilp_schema_version VALUES (1)")
        await conn.execute("INSERT INTO ilp_logs VALUES ('', 10, 0, 15, 0, NULL, NULL)")
        for tid, text, amount, state, notify in (
            (TID, body, 10, "fulfilled", True),
            (TID2, body2, 5, "prepared", False),
        ):
            await conn.execute(
                "INSERT INTO ilp_transfers VALUES ('', $1, $2, $3, true, $4,"
                " '2030-01-01T00:00:00Z', $5, NULL, $6)",
                tid,
                text,
                bytes(32),
                amount,
                state,
                notify,
            )
    finally:
        await conn.close()
    backend = await open_backend(f"{postgres_url}?schema={schema}")
    try:
        log = backend.get_transfer_log()
        assert await log.get_incoming_fulfilled_and_prepared() == "15"
        notices = await log.list_peer_notices()
        assert [(n["transfer"]["id"], n["notice"]) for n in notices] == [(TID, None)]
        assert await log.cancel(TID2, notify_peer=True, notice=b"\x01why") is True
        notices = await log.list_peer_notices()
        assert [(n["transfer"]["id"], n["notice"]) for n in notices] == [
            (TID, None),
            (TID2, b"\x01why"),
        ]
        assert await log.get_incoming_fulfilled_and_prepared() == "10"
        # A row written before version 3 (spaced JSON, a digest) still answers a re-prepare.
        assert await log.prepare(json.loads(body), True) is PrepareOutcome.REPEAT_FULFILLED
        with pytest.raises(DuplicateIdError):
            await log.prepare({**json.loads(body), "amount": "11"}, True)
    finally:
        await backend.close()
    conn = await asyncpg.connect(postgres_url)
    try:
        versions = await conn.fetch(f'SELECT version FROM "{schema}".ilp_schema_version')
    finally:
        await conn.close()
    assert sorted(row[0] for row in versions) == [1, 2, 3]


@pytest.mark.postgres
async def test_postgres_schema_name_is_checked(postgres_url: str) -> None:
    with pytest.raises(ValueError, match="schema"):
        await open_backend(f"{postgres_url}?schema=Robert');DROP")


class SyncStore:
    """A key/value object with plain (not async) methods."""

    def __init__(self, data: dict[str, str] | None = None) -> None:
        self.data = data or {}

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def put(self, key: str, value: str) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


async def test_key_value_adapter_reads_what_the_reference_wrote() -> None:
    transfer: dict[str, Any] = {"id": TID, "amount": "10", "executionCondition": "c"}
    store = SyncStore(
        {
            "foo:tl:balance:if": "10",
            "foo:tl:balance:of": "4",
            "foo:tl:maximum": "120",
            f"foo:tl:transfer:{TID}": json.dumps(
                {"transfer": transfer, "isIncoming": True, "state": "fulfilled", "fulfillment": "f"}
            ),
            "foo:mvt:maximum": json.dumps({"value": "7", "data": {"claim": "x"}}),
        }
    )
    backend = await open_backend(store)
    log = backend.get_transfer_log("foo", maximum="5")
    assert await log.get_balance() == "6"
    assert await log.get_incoming_fulfilled_and_prepared() == "10"
    assert await log.get_maximum() == "120"
    assert (await log.get(TID))["state"] == "fulfilled"
    assert await log.prepare(transfer, True) is PrepareOutcome.REPEAT_FULFILLED
    tracker = backend.get_max_value_tracker("foo")
    assert await tracker.get_max() == {"value": "7", "data": {"claim": "x"}}


async def test_key_value_adapter_writes_the_reference_layout() -> None:
    store = SyncStore()
    backend = await open_backend(store)
    log = backend.get_transfer_log("foo")
    await log.prepare({"id": TID, "amount": "10"}, True)
    await log.fulfill(TID, "f")
    await backend.get_max_value_tracker("foo").set_if_max({"value": "3", "data": None})
    assert store.data["foo:tl:balance:if"] == "10"
    assert json.loads(store.data[f"foo:tl:transfer:{TID}"]) == {
        "transfer": {"id": TID, "amount": "10"},
        "isIncoming": True,
        "state": "fulfilled",
        "fulfillment": "f",
    }
    assert json.loads(store.data["foo:mvt:maximum"]) == {"value": "3", "data": None}
