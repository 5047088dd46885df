"""Evaluation: metrics shared by identity and expression, LFW protocols, FER2013 / FER+ scores."""
