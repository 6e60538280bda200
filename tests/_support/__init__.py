"""Shared test support: real peers and fixtures the suites build on (importable as ``_support``)."""
