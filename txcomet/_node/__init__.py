"""
The stand-alone node: the site built from the plugin's options, and the worker process group.
"""
