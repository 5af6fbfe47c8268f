"""Command modules. Each is small: parse options, build services, call one function, render.

Heavy imports (boto3, moto, rich) happen inside command bodies so ``--help`` stays fast.
"""

# (command name, module in this package, function, one-line help for `efsctl --help`), in the
# order `--help` lists them. The group imports a command's module only when it runs; the
# function's docstring is the command's own `--help`.
COMMANDS = [
    ("up", "up", "up", "Create or converge the whole stack (--local: in the local cloud)."),
    ("plan", "plan", "plan", "Show what `up` would do, without doing it."),
    ("status", "status", "status", "Show every resource of the stack, its health and the API URL."),
    ("down", "down", "down", "Delete everything the stack owns; idempotent and resumable."),
    ("upload", "upload", "upload", "Upload a model file; the producer copies it to EFS."),
    ("predict", "predict", "predict", "Run the consumer on a model (signed POST /predict)."),
    ("models", "models", "models", "List the models on EFS, as the consumer sees them."),
    ("tail-logs", "tail_logs", "tail_logs", "Show both functions' logs interleaved by time; -f follows."),
    ("demo", "demo", "demo", "The whole round trip on a fresh local stack, timed."),
    ("validate", "validate", "validate", "Prove the design's claims on the stack, with figures (and a report)."),
    ("package", "package", "package", "Write the stack as CloudFormation or Terraform, with the handlers' zip."),
]
