"""The presence wire protocol as the SDK publishes it: framing, codes and vocabulary.

The definitions live in :mod:`presence_protocol`, which the server shares; this
module keeps them where the SDK's users have always imported them from.
"""

from presence_protocol import codec, vocabulary
from presence_protocol.codec import *  # noqa: F403 - re-exported whole
from presence_protocol.vocabulary import *  # noqa: F403 - re-exported whole

__all__ = [*vocabulary.__all__, *codec.__all__]
