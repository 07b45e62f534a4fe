"""
Tests of txcomet's fastpath layer.
"""
