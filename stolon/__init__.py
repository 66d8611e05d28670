"""stolon: PostgreSQL high availability (keeper, sentinel, proxy, stolonctl).

The public facade is small: the hook implementation marker for plugin authors and the
version. The model types live in :mod:`stolon.model`.
"""

from __future__ import annotations

import pluggy

__version__ = "0.1.0.dev0"

#: Marker for plugin hook implementations: ``@stolon.hookimpl``.
hookimpl = pluggy.HookimplMarker("stolon")

__all__ = ["__version__", "hookimpl"]
