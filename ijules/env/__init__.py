"""The trading environment."""
