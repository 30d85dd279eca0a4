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
    assert tokens.parse_id(str(tid).upper()) == tid


def test_ids_are_uuid_shaped() -> None:
    import uuid

    tid = tokens.new_id("0123456789abcdef")
    assert str(uuid.UUID(str(tid))) == str(tid)
    assert str(tid).replace("-", "") == tid.tag + tid.rid


def test_every_single_character_change_is_refused() -> None:
    value = tokens.mint(tokens.new_id("0" * 16))
    for i in range(len(tokens.PREFIX), len(value)):
        replacement = "b" if value[i] != "b" else "c"
        assert tokens.parse_minted(value[:i] + replacement + value[i + 1 :]) is None


def test_user_tags_are_keyed_and_stable() -> None:
    assert tokens.user_tag(b"k1", "alice") == tokens.user_tag(b"k1", "alice")
    assert tokens.user_tag(b"k1", "alice") != tokens.user_tag(b"k2", "alice")
    assert tokens.user_tag(b"k1", "alice") != tokens.user_tag(b"k1", "bob")


def test_malformed_ids_are_refused() -> None:
    good = "01234567-89ab-cdef-0123-456789abcdef"
    assert tokens.parse_id(good) is not None
    for value in ["", "a" * 32, good[:-1], good + "a", good.replace("-", ""), good[:-1] + "g"]:
        assert tokens.parse_id(value) is None


def test_secrets_differ() -> None:
    tid = tokens.new_id("0" * 16)
    assert len({tokens.mint(tid) for _ in range(100)}) == 100


def test_the_checksum_is_base32_of_the_crc32() -> None:
    import random
    import zlib

    rng = random.Random(3)
    bodies = ["", "tks_", *("".join(rng.choices("0123456789abcdef_", k=n)) for n in range(90))]
    for body in bodies:
        crc = zlib.crc32(body.encode("ascii")).to_bytes(4, "big")
        assert tokens._checksum(body) == tokens.b32(crc)
