"""The answer cache of ``GatewayClient``: token -> identity (or "inactive") until its deadline.

Entries live as long as the service's cache hint allows and are dropped earlier by revocation
events. Keys are SHA-256 digests, so the cache never holds a token value. Positive entries are
indexed by token id, user and app, so an event drops its matches without a scan.

A check racing a revocation: the answer may have been computed before the revocation and
arrive after its event. So every event is also written to a short journal, and an answer is
stored only if no event since its request started matches it (or the journal is too short to
tell): otherwise the stale answer would outlive the event that should have dropped it.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass

from service.events import USER_APP, EventKind, RevocationEvent
from service.identity import Identity

JOURNAL = 1024


@dataclass(frozen=True, slots=True)
class Invalidation:
    """What one feed event revokes."""

    kind: str  # an EventKind's value; "all" after a reset or a lost feed
    app_id: str = ""
    ids: frozenset[str] = frozenset()
    user_id: str | None = None
    one_app: bool = False  # a user's tokens in ``app_id`` only

    @classmethod
    def from_event(cls, event: RevocationEvent) -> Invalidation:
        return cls(
            kind=event.kind.value,
            app_id=event.app_id,
            ids=frozenset(event.ids),
            user_id=event.user_id,
            one_app=event.scope == USER_APP,
        )

    def matches(self, identity: Identity) -> bool:
        if self.kind == "all" or identity.token_id in self.ids:
            return True
        if self.kind == EventKind.APP:
            return identity.app_id == self.app_id
        if self.kind == EventKind.USER and identity.user_id == self.user_id:
            return not self.one_app or identity.app_id == self.app_id
        if self.kind == EventKind.JWT and identity.user_id == self.user_id and not self.ids:
            # A user's JWTs cut off: of every app (no app_id) or of one.
            return not self.app_id or identity.app_id == self.app_id
        return False


EVERYTHING = Invalidation("all")


@dataclass(frozen=True, slots=True)
class Entry:
    identity: Identity | None  # None: the token is not live
    deadline: float  # monotonic seconds


class AnswerCache:
    def __init__(self, max_entries: int = 100_000) -> None:
        self.max_entries = max_entries
        self._entries: dict[bytes, Entry] = {}
        self._by_id: dict[str, bytes] = {}
        self._by_user: defaultdict[str, set[bytes]] = defaultdict(set)
        self._by_app: defaultdict[str, set[bytes]] = defaultdict(set)
        self._seq = 0
        self._journal: deque[tuple[int, Invalidation]] = deque(maxlen=JOURNAL)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes, now: float) -> Entry | None:
        entry = self._entries.get(key)
        if entry is not None and entry.deadline <= now:
            self._remove(key)
            return None
        return entry

    def mark(self) -> int:
        """Where the journal stands; pass it to ``put`` for an answer requested from now on."""
        return self._seq

    def put(self, key: bytes, identity: Identity | None, deadline: float, mark: int) -> bool:
        """Stores an answer unless an event since ``mark`` may have revoked it."""
        if identity is not None and self._revoked_since(mark, identity):
            return False
        self._remove(key)
        while len(self._entries) >= self.max_entries:
            self._remove(next(iter(self._entries)))  # the oldest entry
        self._entries[key] = Entry(identity, deadline)
        if identity is not None:
            self._by_id[identity.token_id] = key
            self._by_user[identity.user_id].add(key)
            self._by_app[identity.app_id].add(key)
        return True

    def invalidate(self, event: Invalidation) -> int:
        """Drops the entries the event revokes; returns how many."""
        self._seq += 1
        self._journal.append((self._seq, event))
        if event.kind == "all":
            dropped = len(self._entries)
            self._entries.clear()
            self._by_id.clear()
            self._by_user.clear()
            self._by_app.clear()
            return dropped
        keys = {self._by_id[i] for i in event.ids if i in self._by_id}
        if event.kind == EventKind.APP:
            keys |= self._by_app.get(event.app_id, set())
        elif event.kind in (EventKind.USER, EventKind.JWT) and event.user_id is not None:
            keys |= {k for k in self._by_user.get(event.user_id, set()) if self._hit(k, event)}
        for key in keys:
            self._remove(key)
        return len(keys)

    def _hit(self, key: bytes, event: Invalidation) -> bool:
        identity = self._entries[key].identity
        return identity is not None and event.matches(identity)

    def _revoked_since(self, mark: int, identity: Identity) -> bool:
        if mark == self._seq:
            return False
        if not self._journal or self._journal[0][0] > mark + 1:
            return True  # events since the mark fell out of the journal: cannot tell
        return any(seq > mark and event.matches(identity) for seq, event in self._journal)

    def _remove(self, key: bytes) -> None:
        entry = self._entries.pop(key, None)
        if entry is None or entry.identity is None:
            return
        identity = entry.identity
        if self._by_id.get(identity.token_id) == key:
            del self._by_id[identity.token_id]
        for index, name in ((self._by_user, identity.user_id), (self._by_app, identity.app_id)):
            keys = index.get(name)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[name]
