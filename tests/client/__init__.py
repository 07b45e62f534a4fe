"""
Tests of txcomet's client layer.
"""
