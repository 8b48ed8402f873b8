"""Interop tests against the JavaScript reference plugin, run as a subprocess peer."""
