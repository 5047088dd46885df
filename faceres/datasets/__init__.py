"""Datasets for training and evaluation: FER2013 / FER+ image sets and LFW pair lists."""
