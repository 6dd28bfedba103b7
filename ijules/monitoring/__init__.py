"""Monitoring: drift reports and the risk team's e-mail."""
