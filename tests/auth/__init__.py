"""
Tests of txcomet's authorization layer (txcomet/_auth): tokens, rules, hooks, the built-in authorizer.
"""
