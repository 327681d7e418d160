"""Robustness: the attack suite, its task adapters and runs, and the TextAttack bridge."""
