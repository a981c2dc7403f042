"""Test helpers: a private Redis, a real Node BullMQ driver, cross-language waits.

For your own services (the pytest plugin ``bullbridge.testing.plugin`` gives
these as fixtures):

* :class:`Interop` - one test's Python and Node sides on one Redis, under a key
  prefix of its own: producers, workers, your Node processor and producer
  modules, :meth:`Interop.wait_for` across languages, contracts;
* :class:`JobView` / :class:`Received` - what each side saw of a job;
* :class:`Contract` / :class:`ContractStore` - the jobs a producer writes,
  recorded to JSON and replayed through the other language's consumer;
* :class:`NodeDriver` - the Node process itself (``driver.js``, shipped here);
* :mod:`bullbridge.conformance` - the scenarios ``bullbridge interop check`` runs.

Names are imported on first use, so importing the plugin stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bullbridge.testing.contracts import Contract, ContractMismatch, ContractStore, RecordedJob
    from bullbridge.testing.interop import (
        Interop,
        NodeProducer,
        NodeWorker,
        Produced,
        PythonWorker,
        Replay,
        delete_prefix,
        eventually,
    )
    from bullbridge.testing.node import NodeDriver, NodeError, NodeEvent, NodeTimeout
    from bullbridge.testing.npm import NodeModulesError, install_bullmq
    from bullbridge.testing.views import JobView, Received

_WHERE = {
    "Contract": "contracts",
    "ContractMismatch": "contracts",
    "ContractStore": "contracts",
    "RecordedJob": "contracts",
    "Interop": "interop",
    "NodeProducer": "interop",
    "NodeWorker": "interop",
    "Produced": "interop",
    "PythonWorker": "interop",
    "Replay": "interop",
    "delete_prefix": "interop",
    "eventually": "interop",
    "NodeDriver": "node",
    "NodeError": "node",
    "NodeEvent": "node",
    "NodeTimeout": "node",
    "NodeModulesError": "npm",
    "install_bullmq": "npm",
    "JobView": "views",
    "Received": "views",
}

__all__ = [
    "Contract",
    "ContractMismatch",
    "ContractStore",
    "Interop",
    "JobView",
    "NodeDriver",
    "NodeError",
    "NodeEvent",
    "NodeModulesError",
    "NodeProducer",
    "NodeTimeout",
    "NodeWorker",
    "Produced",
    "PythonWorker",
    "Received",
    "RecordedJob",
    "Replay",
    "delete_prefix",
    "eventually",
    "install_bullmq",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'bullbridge.testing' has no attribute {name!r}")
    return getattr(importlib.import_module(f"bullbridge.testing.{module}"), name)
