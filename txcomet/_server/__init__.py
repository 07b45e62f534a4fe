"""
The embeddable server: the Comet service, its resource tree, static files and the lean HTTP path.
"""
