"""The GCS: the head's control store (``server.py``) and the tables it keeps."""
