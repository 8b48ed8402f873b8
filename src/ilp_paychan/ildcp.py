"""ILDCP (RFC 31) for applications: `await ilp_paychan.ildcp.fetch(plugin) -> IldcpInfo`.

A thin public name for `ilp_paychan.v2.ildcp`, so a child asks its parent for its address as
``ilp_paychan.ildcp.fetch(plugin)`` with any v2 plugin.
"""

from __future__ import annotations

from ilp_paychan.v2.errors import IldcpError
from ilp_paychan.v2.ildcp import IldcpInfo, fetch

__all__ = ["IldcpError", "IldcpInfo", "fetch"]
