"""Helpers shared by several test folders.

Imported as `testkit.<module>` (tests/ is on sys.path): a unique top-level name, unlike the bare
`conftest` or `helpers`, which several folders have.
"""
