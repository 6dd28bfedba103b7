"""Model health: the nightly score, its alerts and the actions they start."""
