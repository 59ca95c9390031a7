"""Perp protocol adapters, registered by name (see ``base.register``)."""

from hedger.protocols.base import PerpAdapter, get_adapter, register, registered  # noqa: F401
from hedger.protocols import reference  # noqa: F401  (registers "reference")
