"""The compact record of storage layout v2: parsed back as written, and the JSON the lean
introspection path concatenates from its pieces is byte for byte what the general path
serialises (orjson of ``to_json()``)."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from service import validation
from service.records import HEADER_BYTES, SEP, TokenDraft, TokenRecord, json_text

TOKEN_ID = "01234567-89ab-cdef-0123-456789abcdef"
_scope_chars = st.sampled_from([chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"\\'])
texts = st.text(min_size=1, max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)
drafts = st.builds(
    TokenDraft,
    user_id=texts,
    app_id=texts,
    type=st.just("DEFAULT") | st.text(min_size=1, max_size=20).filter(str.isprintable),
    scopes=st.lists(st.text(_scope_chars, min_size=1, max_size=8), max_size=4, unique=True).map(
        tuple
    ),
    client_name=st.none() | texts,
    device_name=st.none() | texts,
    metadata=st.none() | st.dictionaries(st.text(max_size=8), json_values, min_size=1, max_size=4),
)


def stored(draft: TokenDraft, *, owner: str, expires_at: int, created_us: int) -> bytes:
    """The record as issue.lua writes it (lua/issue.lua), for a hash owned by ``owner``."""
    user = b"" if draft.user_id == owner else json_text(draft.user_id)
    header = expires_at.to_bytes(6) + created_us.to_bytes(7) + b"d" * 16 + b"0"
    return header + json_text(draft.app_id) + SEP + user + SEP + draft.tail_pieces()


def general_oauth(record: TokenRecord) -> dict[str, Any]:
    """RFC 7662's answer built field by field, as api/oauth.py documents it."""
    return {
        "active": True,
        "scope": " ".join(record.scopes),
        "client_id": record.app_id,
        "sub": record.user_id,
        "exp": record.expires_at // 1000,
        "iat": record.created_at // 1000,
        "token_type": record.type,
        "jti": record.id,
    }


@given(drafts, st.booleans(), st.integers(0, 2**48 - 1), st.integers(0, 2**53 - 1))
def test_a_record_reads_back_as_written_and_renders_as_the_general_path(
    draft: TokenDraft, owned: bool, expires_at: int, created_us: int
) -> None:
    owner = draft.user_id if owned else draft.user_id + "-other"
    raw = stored(draft, owner=owner, expires_at=expires_at, created_us=created_us)
    record = TokenRecord.parse(TOKEN_ID, json_text(owner), raw)
    assert record is not None
    assert (record.user_id, record.app_id, record.type) == (draft.user_id, draft.app_id, draft.type)
    assert (record.scopes, record.client_name, record.device_name, record.metadata) == (
        draft.scopes, draft.client_name, draft.device_name, draft.metadata
    )  # fmt: skip
    assert (record.expires_at, record.created_us, record.digest) == (
        expires_at,
        created_us,
        b"d" * 16,
    )
    assert record.json_bytes() == orjson.dumps(record.to_json())
    assert record.introspection_json() == orjson.dumps({"active": True, **record.to_json()})
    assert orjson.loads(record.json_bytes())["user_id"] == draft.user_id
    assert record.oauth_json() == orjson.dumps(general_oauth(record))


def test_validated_scopes_need_no_json_escaping() -> None:
    # json_bytes() puts scopes into JSON strings as they are: only safe for RFC 6749 tokens.
    every_scope_char = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"\\')
    assert validation.scopes([every_scope_char]) == (every_scope_char,)
    assert orjson.dumps(every_scope_char) == b'"' + every_scope_char.encode() + b'"'


def test_what_is_not_a_record_is_refused() -> None:
    draft = TokenDraft("alice", "app", "DEFAULT", (), None, None, None)
    good = stored(draft, owner="alice", expires_at=1800000000000, created_us=1700000000000000)
    owner = json_text("alice")
    assert TokenRecord.parse(TOKEN_ID, owner, good) is not None
    assert TokenRecord.parse(TOKEN_ID, None, good) is None  # no owner, no user piece
    assert TokenRecord.parse(TOKEN_ID, owner, good[:HEADER_BYTES]) is None
    assert TokenRecord.parse(TOKEN_ID, owner, good.replace(b'"app"', b"app")) is None
    assert TokenRecord.parse(TOKEN_ID, owner, good.rsplit(SEP, 1)[0]) is None  # a piece short


_numbers = st.just("") | st.integers(1, 2**48).map(str)
session_pieces = st.tuples(
    st.just("") | st.text("0123456789abcdef", min_size=16, max_size=16),
    _numbers, _numbers, _numbers, _numbers, _numbers,
    st.just("") | st.text("0123456789abcdef", min_size=16, max_size=16),
).map(lambda fields: ",".join(fields).rstrip(",").encode())  # fmt: skip


@given(drafts, session_pieces, st.integers(0, 2**48 - 1), st.integers(0, 2**53 - 1))
def test_a_session_piece_reads_back_and_renders_as_the_general_path(
    draft: TokenDraft, piece: bytes, expires_at: int, created_us: int
) -> None:
    raw = stored(draft, owner=draft.user_id, expires_at=expires_at, created_us=created_us)
    record = TokenRecord.parse(TOKEN_ID, json_text(draft.user_id), raw + SEP + piece)
    assert record is not None
    fields = [*piece.decode().split(","), *[""] * 7][:7]
    assert record.session_id == (f"{TOKEN_ID[:19]}{fields[0][:4]}-{fields[0][4:]}" if fields[0]
                                 else TOKEN_ID)  # fmt: skip
    assert record.idle_ttl == int(fields[1] or 0)
    assert record.rotated == bool(fields[5])
    assert record.last_used_at == (int(fields[4]) if fields[4] else record.created_at)
    assert record.json_bytes() == orjson.dumps(record.to_json())
    assert record.introspection_json() == orjson.dumps({"active": True, **record.to_json()})
    assert record.oauth_json() == orjson.dumps(general_oauth(record))


def test_live_until_is_the_expiry_or_sooner_once_idle() -> None:
    draft = TokenDraft("alice", "app", "DEFAULT", (), None, None, None)
    raw = stored(draft, owner="alice", expires_at=10_000, created_us=1_000_000)
    owner = json_text("alice")
    plain = TokenRecord.parse(TOKEN_ID, owner, raw)
    idle = TokenRecord.parse(TOKEN_ID, owner, raw + SEP + b",2,,,3000")
    rotated = TokenRecord.parse(TOKEN_ID, owner, raw + SEP + b",,,,,1500,0011223344556677")
    assert plain is not None and idle is not None and rotated is not None
    assert (plain.live_until, idle.live_until, rotated.live_until) == (10_000, 5_000, 10_000)
    assert plain.usable(9_999) and not plain.usable(10_000)
    assert idle.usable(4_999) and not idle.usable(5_000)
    assert not rotated.usable(2_000)
    assert TokenRecord.parse(TOKEN_ID, owner, raw + SEP + b",x") is None  # damaged: not a record
