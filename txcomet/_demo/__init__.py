"""
The demo at C{/}: the index page and the live chart pushed over multipart.
"""
