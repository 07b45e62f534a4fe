"""
Tests of txcomet's demo layer.
"""
