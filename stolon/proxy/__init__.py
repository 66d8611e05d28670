"""stolon-proxy: routes client connections to the cluster's current master (and, with a
read-only listener, to standbys), and closes them when it is unsure of the state.

Modules: :mod:`.config` (flags), :mod:`.routing` (destinations and connections per
listener), :mod:`.policies` (health policy plugins), :mod:`.forwarder` (the data path),
:mod:`.listener` (listening sockets), :mod:`.checker` (the check loop and timeout timer),
:mod:`.metrics`, :mod:`.daemon` (the process). See docs/proxy.md.
"""
