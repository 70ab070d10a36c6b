"""Utilities (as ``ray.util``)."""
