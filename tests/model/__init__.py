"""
Tests of txcomet's model layer.
"""
