"""Evaluation: the named protocols, the official scorers, bench lambada/babi and the stage-2 step curve."""
