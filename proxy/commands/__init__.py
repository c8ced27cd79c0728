"""The ``vetcache`` subcommands, one module each, all of one shape::

    NAME = "serve"                      # the subcommand
    HELP = "run the gateway"            # one line for ``vetcache --help``
    def add_arguments(parser) -> None   # its options, each with help text
    def run(args) -> int                # the exit status

Errors are one line on stderr (``common.fail``; one line per bad field for configs) and
exit status 2. Heavy imports happen inside ``run``, so ``vetcache --help`` stays quick.
"""
