"""Vector stores behind one interface (``base.Store``): Redis with the Query Engine for
production, in-process memory for the embedded default."""
