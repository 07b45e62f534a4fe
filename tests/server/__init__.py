"""
Tests of txcomet's server layer.
"""
