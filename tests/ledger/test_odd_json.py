"""Records that peer JSON can produce and Python handles in its own way, on every store (found by
the fuzzer: each made a SQLite listener answer "internal error" to a Prepare's `custom` entry).

- A lone surrogate: peer JSON may carry one as an escape (``"\\ud800"``) and Python reads it into
  a str that strict UTF-8 cannot encode, so SQLite and PostgreSQL refused the record. It is stored
  as that escape and read back unchanged.
- Nesting too deep to write again (JSON the parser could still read, a little higher up the
  stack): refused with InvalidFieldsError, nothing stored, instead of a RecursionError.
"""

from __future__ import annotations

import pytest

from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.ledger import Backend, PrepareOutcome

TRANSFER = {
    "id": "5857d460-2a46-4545-8311-5539d99e78c0",
    "amount": "10",
    "executionCondition": "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU",
    "expiresAt": "2030-01-01T00:00:00.000Z",
    "ledger": "g.eur.test.",
    "to": "g.eur.test.bob",
    "from": "g.eur.test.alice",
    "custom": {"note": "a\ud800b \\\udfff é"},
}


async def test_a_lone_surrogate_round_trips_through_the_store(backend: Backend) -> None:
    log = backend.get_transfer_log("surrogates")
    assert await log.prepare(TRANSFER, True) is PrepareOutcome.NEW
    assert (await log.get(TRANSFER["id"]))["transfer"] == TRANSFER
    assert await log.prepare(dict(TRANSFER), True) is PrepareOutcome.REPEAT_PREPARED
    assert await log.get_incoming_fulfilled_and_prepared() == "10"


async def test_a_record_too_deeply_nested_to_write_is_refused(backend: Backend) -> None:
    log = backend.get_transfer_log("deep")
    deep: list[object] = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(InvalidFieldsError, match="JSON-serialisable"):
        await log.prepare({**TRANSFER, "custom": deep}, True)
    assert await log.get_incoming_fulfilled_and_prepared() == "0"
