"""Parity: the samples a model is proved on, the policies its outputs are judged by, and the judgement."""
