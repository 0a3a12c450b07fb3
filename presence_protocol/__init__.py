"""The presence wire protocol, version 1, shared by the server and the client SDK
so the two cannot drift. It imports nothing of the project.

``import presence_protocol`` gives the vocabulary (values, codes, patterns:
:mod:`presence_protocol.vocabulary`, standard library only);
:mod:`presence_protocol.codec` turns messages into frames and back (msgpack or
JSON).
"""

from presence_protocol import vocabulary
from presence_protocol.vocabulary import *  # noqa: F403 - the package is its vocabulary

__all__ = vocabulary.__all__
