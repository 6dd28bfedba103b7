"""IntradayJules: an intraday trading agent with a risk-first MLOps lifecycle."""

__version__ = "0.1.0"
