"""Execution: what trading costs."""
