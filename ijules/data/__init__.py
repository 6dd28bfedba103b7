"""Bars in: ingest, validation and features."""
