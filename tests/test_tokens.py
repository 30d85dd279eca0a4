"""The token format: minting, parsing, checksums and ids."""

from __future__ import annotations

from service import tokens


def test_minted_token_round_trips_to_its_id() -> None:
    tid = tokens.new_id(tokens.user_tag(b"k" * 32, "alice"))
    value = tokens.mint(tid)
    assert value.startswith("tks_")
    assert len(value) == 97
    assert tokens.parse_minted(value) == tid
    assert tokens.parse_id(str(tid)) == tid


def test_every_single_character_change_is_refused() -> None:
    value = tokens.mint(tokens.new_id("a" * 16))
    for i in range(len(tokens.PREFIX), len(value)):
        replacement = "b" if value[i] != "b" else "c"
        assert tokens.parse_minted(value[:i] + replacement + value[i + 1 :]) is None


def test_user_tags_are_keyed_and_stable() -> None:
    assert tokens.user_tag(b"k1", "alice") == tokens.user_tag(b"k1", "alice")
    assert tokens.user_tag(b"k1", "alice") != tokens.user_tag(b"k2", "alice")
    assert tokens.user_tag(b"k1", "alice") != tokens.user_tag(b"k1", "bob")


def test_malformed_ids_are_refused() -> None:
    for value in ["", "a" * 31, "a" * 33, "A" * 32, "1" * 32, "a" * 31 + "{"]:
        assert tokens.parse_id(value) is None


def test_secrets_differ() -> None:
    tid = tokens.new_id("a" * 16)
    assert len({tokens.mint(tid) for _ in range(100)}) == 100
