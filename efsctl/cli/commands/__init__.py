"""Command modules. Each is small: parse options, build services, call one function, render.

Heavy imports (boto3, moto, rich) happen inside command bodies so ``--help`` stays fast.
"""

# (command name, module in this package, function, one-line help for `efsctl --help`), in the
# order `--help` lists them. The group imports a command's module only when it runs; the
# function's docstring is the command's own `--help`.
COMMANDS = [
    ("status", "status", "status", "Show every resource of the stack, its health and the API URL."),
]
