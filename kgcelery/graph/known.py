"""What one process already knows its clients' graphs hold: the objects signals are about.

A worker writes events about the same pods and nodes batch after batch; asking the
graph each time which of them exist was an eighth of writing an event. Objects are never
deleted and their ``uid_v`` only grows, so "this object exists with at least this
``uid_v``" stays true, unless the whole graph is dropped or restored behind this
process's back: the statements that rely on it count what they matched, and a short
count makes the writer forget the client and ask the graph again. (A graph restored
from an older backup has every object but perhaps older uids; restart the workers
after a restore so that they ask again.)
"""

from __future__ import annotations

from collections import OrderedDict

#: Objects remembered, all clients together (at most ~25 MB with long names and uids);
#: the least recently used beyond it are forgotten, and only cost a read again.
DEFAULT_CAPACITY = 50_000


class KnownObjects:
    """(client, object id) -> the greatest ``uid_v`` the graph is known to hold."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = capacity
        self._known: OrderedDict[tuple[str, str], str] = OrderedDict()

    def covers(self, client_id: str, object_id: str, uid_v: str) -> bool:
        """True when the graph holds the object with this ``uid_v`` or a newer one."""
        key = (client_id, object_id)
        held = self._known.get(key)
        if held is None or uid_v > held:
            return False
        self._known.move_to_end(key)
        return True

    def learn(self, client_id: str, object_id: str, uid_v: str) -> None:
        key = (client_id, object_id)
        held = self._known.get(key)
        self._known[key] = uid_v if held is None or uid_v > held else held
        self._known.move_to_end(key)
        while len(self._known) > self.capacity:
            self._known.popitem(last=False)

    def forget(self, client_id: str) -> None:
        """Forget one client's objects (rare: its graph was dropped or replaced)."""
        for key in [key for key in self._known if key[0] == client_id]:
            del self._known[key]

    def __len__(self) -> int:
        return len(self._known)
