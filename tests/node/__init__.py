"""
Tests of txcomet's node layer.
"""
