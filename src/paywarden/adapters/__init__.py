"""Adapters: the clock, id generation and other edges the domain must not touch."""
