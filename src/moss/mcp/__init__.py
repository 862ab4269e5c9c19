"""``moss mcp``: moss indexes as shared memory for agents, over the Model Context Protocol.

Needs the ``mcp`` extra (``pip install 'moss-sessions[mcp]'``). :func:`create_server` builds
the server over a :class:`Memory` (a client, optionally scoped to one index or a name prefix);
:func:`serve` runs it over stdio or streamable HTTP.
"""

from .memory import Memory, Scope
from .server import create_server, serve

__all__ = ["Memory", "Scope", "create_server", "serve"]
