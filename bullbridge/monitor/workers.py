"""Workers per queue and their language, from one ``CLIENT LIST``.

How each kind of worker names its connection (checked against Node BullMQ
6.7.0 and the Python port 3.4.4 in ``tests/monitor/test_workers.py``):

======================  ==============================================  ==========================
worker                  CLIENT SETNAME                                  connections named
======================  ==============================================  ==========================
Node, ``name: "n"``     ``<prefix>:<base64(queue)>:w:n``                1 (the blocking one)
Node, no name           ``<prefix>:<base64(queue)>``                    1 (the blocking one)
bullbridge ``py1``      ``<prefix>:<base64(queue)>:w:bullbridge:py1``   1 (the blocking one)
Python port, ``"p"``    ``<prefix>:<queue>:w:p``                        2 (command and blocking)
Python port, no name    ``<prefix>:<queue>``                            2
======================  ==============================================  ==========================

Node's ``Queue``, bullbridge's monitor, producers (``...:producer``) and
QueueEvents (``...:qe``) match none of the worker patterns. The port's workers
name two connections each, so they are counted as half a worker per
connection (rounded up per name). Node's own ``getWorkers()`` sees Node and
bullbridge workers, not the port's.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bullbridge.monitor.languages import (
    LANGUAGES,
    NODE,
    PYTHON,
    PYTHON_PORT,
    display_worker_name,
    is_python_worker_name,
)
from bullbridge.monitor.reader import Reader, text


@dataclass(frozen=True)
class WorkerInfo:
    """One worker connection seen in CLIENT LIST."""

    queue: str
    language: str
    #: The worker's name (without bullbridge's marker); ``None`` when unnamed.
    name: str | None
    client_name: str
    addr: str
    age_seconds: int
    idle_seconds: int
    last_command: str


def parse_client_list(raw: str) -> list[dict[str, str]]:
    """``CLIENT LIST`` text as one dict per connection (as Node's ``parseClientList``)."""
    clients: list[dict[str, str]] = []
    for line in raw.splitlines():
        if not line.strip():
            continue
        entry: dict[str, str] = {}
        for pair in line.split(" "):
            key, sep, value = pair.partition("=")
            if sep:
                entry[key] = value
        clients.append(entry)
    return clients


def _encoded(queue: str) -> str:
    return base64.b64encode(queue.encode()).decode()


def classify(
    clients: Iterable[Mapping[str, str]], queues: Iterable[str], prefix: str = "bull"
) -> dict[str, list[WorkerInfo]]:
    """The worker connections of each queue, with their language."""
    by_encoded = {_encoded(q): q for q in queues}
    by_plain = {q: q for q in by_encoded.values()}
    out: dict[str, list[WorkerInfo]] = {q: [] for q in by_plain}
    head = prefix + ":"
    for client in clients:
        raw = client.get("name", "")
        if not raw.startswith(head):
            continue
        part, sep, tail = raw[len(head) :].partition(":")
        if sep and not tail.startswith("w:"):
            continue  # a producer, QueueEvents, or anything else that is no worker
        worker_name = tail[2:] if sep else None
        if part in by_encoded:
            queue = by_encoded[part]
            language = PYTHON if worker_name and is_python_worker_name(worker_name) else NODE
        elif part in by_plain:
            queue, language = by_plain[part], PYTHON_PORT
        else:
            continue
        out[queue].append(
            WorkerInfo(
                queue=queue,
                language=language,
                name=display_worker_name(worker_name),
                client_name=raw,
                addr=client.get("addr", ""),
                age_seconds=int(client.get("age", "0") or 0),
                idle_seconds=int(client.get("idle", "0") or 0),
                last_command=client.get("cmd", ""),
            )
        )
    return out


def count_by_language(workers: Iterable[WorkerInfo]) -> dict[str, int]:
    """Workers per language: one per Node/bullbridge connection, one per two port connections."""
    counts: dict[str, int] = {}
    port_connections: dict[str, int] = {}
    for w in workers:
        if w.language == PYTHON_PORT:
            port_connections[w.client_name] = port_connections.get(w.client_name, 0) + 1
        else:
            counts[w.language] = counts.get(w.language, 0) + 1
    if port_connections:
        counts[PYTHON_PORT] = sum(math.ceil(n / 2) for n in port_connections.values())
    return {lang: counts[lang] for lang in LANGUAGES if lang in counts}


async def read_workers(reader: Reader, queues: Iterable[str], prefix: str = "bull") -> dict[str, list[WorkerInfo]]:
    """One ``CLIENT LIST`` for all the given queues."""
    raw = text(await reader.execute("CLIENT", "LIST")) or ""
    return classify(parse_client_list(raw), queues, prefix)
