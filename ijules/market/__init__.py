"""Market state: volatility, trend, correlation and the regimes they define."""
