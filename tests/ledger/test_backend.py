"""Backend: keys, store selection by URL or object."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ilp_paychan.errors import InvalidFieldsError
from ilp_paychan.ledger import Backend, MemoryStore, open_backend


@pytest.mark.parametrize("key", ["test:", "a b", "ä", "x/y", 5])
async def test_invalid_keys_are_value_errors(key: Any) -> None:
    backend = await open_backend("memory:")
    with pytest.raises(ValueError, match="invalid key"):
        backend.get_transfer_log(key)
    with pytest.raises(ValueError, match="invalid key"):
        backend.get_max_value_tracker(key)


@pytest.mark.parametrize("key", [None, ""])
async def test_tracker_key_is_required(key: Any) -> None:
    backend = await open_backend("memory:")
    with pytest.raises(ValueError, match="key must be defined"):
        backend.get_max_value_tracker(key)


async def test_base64url_keys_and_empty_log_key_are_fine() -> None:
    backend = await open_backend("memory:")
    assert backend.get_transfer_log().key == ""
    assert backend.get_transfer_log("Az09_-").key == "Az09_-"
    assert backend.get_max_value_tracker("Az09_-").key == "Az09_-"


async def test_options_mapping_is_accepted() -> None:
    backend = await open_backend("memory:")
    log = backend.get_transfer_log({"key": "k", "maximum": "5", "minimum": "-5"})
    assert (log.key, await log.get_maximum(), await log.get_minimum()) == ("k", "5", "-5")


async def test_bad_limit_argument_is_invalid_fields() -> None:
    backend = await open_backend("memory:")
    with pytest.raises(InvalidFieldsError, match="maximum"):
        backend.get_transfer_log("k", maximum="lots")


async def test_store_objects_and_backends_are_accepted() -> None:
    store = MemoryStore()
    backend = await open_backend(store)
    assert backend.store is store
    assert await open_backend(backend) is backend


async def test_unknown_scheme_and_non_stores_are_refused() -> None:
    with pytest.raises(ValueError, match="scheme"):
        await open_backend("redis://127.0.0.1")
    with pytest.raises(ValueError, match="store must be"):
        await open_backend(42)


@pytest.mark.parametrize("form", ["relative", "absolute", "path"])
async def test_sqlite_urls_follow_the_sqlalchemy_convention(
    form: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    target: Any = {
        "relative": "sqlite:///rel.db",
        "absolute": f"sqlite:///{tmp_path}/abs.db",
        "path": tmp_path / "p.db",
    }[form]
    backend: Backend = await open_backend(target)
    try:
        await backend.get_max_value_tracker("k").set_if_max({"value": "1"})
    finally:
        await backend.close()
    expected = {"relative": "rel.db", "absolute": "abs.db", "path": "p.db"}[form]
    assert (tmp_path / expected).exists()
