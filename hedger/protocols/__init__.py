"""Perp protocol adapters, registered by name (see ``base.register``)."""

from hedger.protocols.base import PerpAdapter, get_adapter, register, registered  # noqa: F401
from hedger.protocols.reference import adapter as _reference  # noqa: F401  (registers "reference")
from hedger.protocols.aave_v3 import adapter as _aave_v3  # noqa: F401  (registers "aave-v3")
from hedger.protocols.gmx_v2 import adapter as _gmx_v2  # noqa: F401  (registers "gmx-v2")
