"""Out-of-sample evaluation: backtests and metrics."""
