"""A transfer record holding a lone surrogate is stored and read back unchanged by every store.

Peer JSON may carry one as an escape (``"\\ud800"``) and Python reads it into a str that strict
UTF-8 cannot encode, so SQLite and PostgreSQL refused the record (found by the fuzzer: a
Prepare with such a `custom` entry made a SQLite listener answer "internal error").
"""

from __future__ import annotations

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
