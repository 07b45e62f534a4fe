"""
Tests of txcomet's bus layer.
"""
