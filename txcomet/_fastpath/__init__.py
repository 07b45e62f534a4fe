"""
The fan-out fast path: socket writers, the turn, rosters and the shared sink. Imports only the model.
"""
