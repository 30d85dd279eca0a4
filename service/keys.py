"""Every Redis key name of the service, built here and nowhere else.

Cluster rule: the part of a key between the first ``{`` and ``}`` picks its slot. All keys of
one user share ``{<tag>}`` (the keyed hash in the token), so each per-user change is one
single-slot Lua script, atomic on standalone Redis and on Cluster alike. User and app ids
never appear in key names (they may hold braces); only hashes of them do.

- ``h:{tag}`` hash (layout v2): one field per token, its rid (8 raw bytes) -> its compact record
  (records.py), plus ``u``, the owner's user id (JSON), stored once, and ``c``, the cursor of
  the bounded prune of a big hash. Expires with its latest-expiring token (``PEXPIREAT GT``);
  an expired field is never served and is pruned by the user's next write.
- ``a:{apphash.bucket}`` zset user tag -> newest expiry: the users holding tokens of an app,
  split in buckets so no key grows big; expires with its newest member.
- ``p:<digest>`` string: id of a registered (externally minted) token; expires with it.
- ``e:{tag}`` list: the user's recent revocation events (JSON), newest first, capped; expires
  after the longest token lifetime without a new one.
- ``{w}aw`` hash app id -> revoked_before us (app watermarks); ``{w}sweeps`` the same for
  sweeps not finished. Both expire after the longest token lifetime. On a Cluster the
  watermarks hash has ``WATERMARK_COPIES`` copies, ``{w}aw`` and ``{w.<n>}aw``, one in each
  window of 256 slots (``watermark_copies()``), so every node holds some: an introspection
  reads the copy on its token's node and depends on that node only (app_watermarks.py).
- ``events`` stream: revocation events, trimmed by MINID to the longest token lifetime.
- ``d:{slot tag}`` string, only with ``TOKENSTORE_WAIT_REPLICAS``: written (1 s expiry) after
  each revocation so that WAIT always has a write of its own connection to wait for, even
  when the revocation changed nothing (a retry after a 503): the slot tag of the key written.
- ``jd:{<hash of iss and jti>}`` string, only with JWTs configured: a denied JWT (issuer and
  ``jti``); expires a minute after the JWT (``PXAT``, jwt_rules.CLOCK_MARGIN_MS). Its own
  slot.
- ``jc:{tag}`` hash, only with JWTs configured: the user's JWT cut-offs, ``*`` (every app) or
  an app id -> us: the user's JWTs (of that app) issued before it are revoked. Beside the
  user's hash (same slot); expires ``TOKENSTORE_JWT_MAX_TTL`` after its last change. The
  per-app cut-off is the app watermark above.
- ``wh:{<webhook id>}:failed`` hash: a webhook's dead letters, stream id -> JSON, and
  ``wh:{<webhook id>}:failed.order`` zset (every score 0): their stream ids, zero-padded so
  that the lexical order is the stream's (``dead_letter_member``), for paging oldest first.
  ``wh:{<webhook id>}:lease`` string: the random token of the one process delivering the
  webhook's events, expiring ``TOKENSTORE_WEBHOOK_LEASE`` after its last renewal
  (webhooks/lease.py). A webhook's keys share its slot (its id is the tag): the dead-letter
  scripts write both of theirs at once. The webhook's consumer group on ``events`` is
  ``webhook:<id>``. Webhook ids are the config's plain ``[A-Za-z0-9._-]`` names (no braces),
  never user input.
- ``meta`` hash: ``tag_key``, the secret behind user tags, and ``layout``, the version of
  this layout; the one key with no expiry.

Layout 1 (tokenstore 0.1) kept a hash per token (``t:{tag}:rid``) and a zset per user
(``u:{tag}``); ``LAYOUT_VERSION`` lets a process refuse a keyspace of another layout.
"""

from __future__ import annotations

import hashlib
import zlib

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from service.tokens import TokenId, b32

LAYOUT_VERSION = 2
# Fields of a user hash that are not tokens (a token's field is its rid, 8 raw bytes).
OWNER_FIELD, PRUNE_CURSOR_FIELD = "u", "c"
RID_BYTES = 8
# Users per app bucket stay few enough for Redis's compact encoding; changing this number
# would orphan existing app index keys, so it is fixed rather than configurable.
APP_BUCKETS = 1024
# Copies of the app watermarks on a Cluster, one per window of slots. Fixed: the copies' names
# follow from it, and every process must agree on them.
WATERMARK_COPIES = 64


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.watermarks = f"{prefix}{{w}}aw"
        self.sweeps = f"{prefix}{{w}}sweeps"
        self.events = f"{prefix}events"
        self.meta = f"{prefix}meta"

    def user(self, tag: str) -> str:
        return f"{self.prefix}h:{{{tag}}}"

    def durability_mark(self, written: str) -> str:
        """A key in the slot of key ``written`` (one of the keys above, all hash-tagged)."""
        slot_tag = written[written.index("{") : written.index("}") + 1]
        return f"{self.prefix}d:{slot_tag}"

    def webhook_failures(self, webhook_id: str) -> tuple[str, str]:
        """A webhook's dead letters (hash) and their order (zset), in one slot."""
        failed = f"{self.prefix}wh:{{{webhook_id}}}:failed"
        return failed, f"{failed}.order"

    def webhook_lease(self, webhook_id: str) -> str:
        return f"{self.prefix}wh:{{{webhook_id}}}:lease"

    def user_events(self, tag: str) -> str:
        return f"{self.prefix}e:{{{tag}}}"

    def app_bucket(self, app_id: str, bucket: int) -> str:
        return f"{self.prefix}a:{{{app_hash(app_id)}.{bucket}}}"

    def app_bucket_of(self, app_id: str, tag: str) -> str:
        return self.app_bucket(app_id, zlib.crc32(tag.encode("ascii")) % APP_BUCKETS)

    def jwt_denied(self, issuer: str, jti: str) -> str:
        digest = hashlib.sha256(f"{issuer}\0{jti}".encode()).digest()[:16]
        return f"{self.prefix}jd:{{{b32(digest)}}}"

    def jwt_cutoffs(self, tag: str) -> str:
        return f"{self.prefix}jc:{{{tag}}}"

    def pointer(self, token_digest: bytes) -> str:
        return f"{self.prefix}p:{b32(token_digest)}"

    def watermark_copies(self) -> list[str]:
        """The Cluster's copies of the watermarks hash, by slot window; the first one is
        ``watermarks`` itself (which a standalone Redis keeps alone)."""
        return [f"{self.prefix}{{{tag}}}aw" for tag in _COPY_TAGS]


STREAM_ID_DIGITS = 20  # either number of a stream id is at most 2**64 - 1


def dead_letter_member(event_id: str) -> str:
    """A stream id ("<ms>-<seq>") as a member of a webhook's dead-letter order: both numbers
    zero-padded, so that members sort (ZRANGE BYLEX) as the stream does."""
    ms, _, seq = event_id.partition("-")
    return f"{int(ms):0{STREAM_ID_DIGITS}d}-{int(seq or 0):0{STREAM_ID_DIGITS}d}"


def dead_letter_id(member: str) -> str:
    ms, _, seq = member.partition("-")
    return f"{int(ms)}-{int(seq)}"


def copy_window(slot: int) -> int:
    """The window of slots (of WATERMARK_COPIES) that ``slot`` falls in."""
    return slot * WATERMARK_COPIES // REDIS_CLUSTER_HASH_SLOTS


def _copy_tags() -> list[str]:
    """Hash tags, one in each slot window: ``w`` (the watermarks' own) where it falls, then
    the first ``w.<n>`` to fall in each other window."""
    tags: dict[int, str] = {copy_window(key_slot(b"w")): "w"}
    n = 0
    while len(tags) < WATERMARK_COPIES:
        tag = f"w.{n}"
        tags.setdefault(copy_window(key_slot(tag.encode())), tag)
        n += 1
    first = tags.pop(copy_window(key_slot(b"w")))
    return [first, *(tags[window] for window in sorted(tags))]


_COPY_TAGS = _copy_tags()


def rid_field(tid: TokenId) -> bytes:
    """The field of a token in its user's hash: its rid as 8 raw bytes (not 16 hex digits:
    the 8 bytes saved put a typical one-token hash in a smaller allocation)."""
    return bytes.fromhex(tid.rid)


def app_hash(app_id: str) -> str:
    return b32(hashlib.sha256(app_id.encode()).digest()[:10])
