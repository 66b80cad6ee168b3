"""Live pushes of new timeline entries: the Redis pub/sub channel names.

Writers publish each new entry's member on `live:tl:{user}` (a fanned-out
delivery) or `live:ai:{author}` (an author's new post; followers of celebrities
and the author themself listen there). The multiplexing subscriber that serves
every watcher of a process is the kit's `services.kit.events.live.LiveHub`.
"""

from __future__ import annotations


def home_channel(user_id: int) -> str:
    return f"live:tl:{{{user_id}}}"


def author_channel(author_id: int) -> str:
    return f"live:ai:{{{author_id}}}"
