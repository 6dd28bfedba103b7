"""Risk: VaR and expected shortfall, their backtests, the risk engine, sizing, attribution."""
