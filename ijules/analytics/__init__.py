"""Performance statistics of a return series and their significance: pure functions of numbers."""
