"""
The model: events, channel names, errors, configuration and the wire's constants. Imports nothing of txcomet but L{txcomet.interfaces}.
"""
