"""Scoring models: episode metrics, clip classification, model comparison, labelled-episode evaluation."""
