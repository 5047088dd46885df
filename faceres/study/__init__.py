"""Studies of residual vs plain networks, from the registry's trained models."""
