"""Nightly paper trading of the champion and the challenger: ledgers, state carried over."""
