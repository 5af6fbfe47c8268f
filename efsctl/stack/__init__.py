"""The stack engine: model (desired, pure) -> observe (describe only) -> plan (pure) -> execute
(the one place that mutates)."""
