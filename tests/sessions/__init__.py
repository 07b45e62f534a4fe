"""
Tests of txcomet's sessions layer.
"""
