"""Command modules. Each is small: parse options, build services, call one function, render.

Heavy imports (boto3, moto, rich) happen inside command bodies so ``--help`` stays fast.
"""

# (command name, module in this package, function) in the order ``--help`` lists them.
COMMANDS = [
    ("status", "status", "status"),
    ("upload", "upload", "upload"),
    ("predict", "predict", "predict"),
    ("models", "models", "models"),
    ("tail-logs", "tail_logs", "tail_logs"),
    ("demo", "demo", "demo"),
]
