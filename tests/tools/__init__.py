"""Checks of the source tree anyone can run, each a module with a ``main`` and an exit status:

    python -m tests.tools.imports [--modules]   # the package import graph, backwards imports
    python -m tests.tools.sizes                 # modules over 400 lines, functions over 60

They read the code with ``ast`` and never import it; tests/unit runs each on the real tree."""
