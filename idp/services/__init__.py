"""Domain logic. Nothing here touches ``flask.request``."""
