"""
Tests of txcomet's transports layer.
"""
