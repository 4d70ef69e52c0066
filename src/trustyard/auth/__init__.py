"""Access domain (L2a): who may do what."""
