"""Registered algos; importing this package registers the built-in ones."""
