"""Command modules. Each is small: parse options, build services, call one function, render.

Heavy imports (boto3, moto, rich) happen inside command bodies so ``--help`` stays fast.
"""

# (command name, module in this package, function) in the order ``--help`` lists them.
COMMANDS = [
    ("up", "up", "up"),
    ("plan", "plan", "plan"),
    ("status", "status", "status"),
    ("down", "down", "down"),
]
