"""Chaos and fault tests: real processes, real sockets, durable stores, crashes and cut links."""
