"""Training the recurrent policy."""
