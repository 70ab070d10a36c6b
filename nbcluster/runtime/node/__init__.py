"""The node manager: one per node, ``manager.py`` and its parts."""
