"""How a local cloud is configured when it starts: pure data, passed to the daemon as arguments.

The realism profile and time scale are chosen once, when the process starts (a running local
cloud keeps its profile; asking for another one starts a fresh process). ``instant`` makes
everything ready at once, as moto does; the fidelity layer may add profiles (``aws``) whose
simulated AWS durations are multiplied by ``time_scale``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

PROFILES = ("instant", "aws")

# Lambda retries a failed asynchronous invocation twice, after about one and then two minutes.
AWS_ASYNC_RETRY_DELAYS = (60.0, 120.0)
# Locally, under the instant profile, the same two retries come after one and two seconds.
INSTANT_ASYNC_RETRY_DELAYS = (1.0, 2.0)

# A new AWS account may run 10 concurrent executions; the local cap stands for the machine.
DEFAULT_CONCURRENCY = 10
# Lambda recycles idle execution environments after minutes; so do we, to give memory back.
DEFAULT_IDLE_SECONDS = 300.0


@dataclass(frozen=True)
class CloudOptions:
    realism: str = "instant"
    time_scale: float = 1.0
    async_retry_delays: tuple[float, ...] | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    idle_seconds: float = DEFAULT_IDLE_SECONDS
    extra: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.realism not in PROFILES:
            raise ValueError(f"unknown realism profile {self.realism!r} (choose from {', '.join(PROFILES)})")
        if not self.time_scale > 0:
            raise ValueError("time scale must be positive")
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")

    @property
    def retry_delays(self) -> tuple[float, ...]:
        """Delays before the two retries of a failed asynchronous invocation, in seconds."""
        if self.async_retry_delays is not None:
            return tuple(self.async_retry_delays)
        if self.realism == "aws":
            return tuple(d * self.time_scale for d in AWS_ASYNC_RETRY_DELAYS)
        return INSTANT_ASYNC_RETRY_DELAYS

    def identity(self) -> dict[str, object]:
        """What must match for a running local cloud to be reused as is."""
        return {"realism": self.realism, "time_scale": float(self.time_scale)}

    def to_args(self) -> list[str]:
        args = ["--realism", self.realism, "--time-scale", repr(float(self.time_scale)),
                "--concurrency", str(self.concurrency), "--idle-seconds", repr(float(self.idle_seconds))]
        if self.async_retry_delays is not None:
            args += ["--async-retry-delays", ",".join(repr(float(d)) for d in self.async_retry_delays)]
        for key, value in sorted(self.extra.items()):
            args += ["--option", f"{key}={value}"]
        return args

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["retry_delays"] = list(self.retry_delays)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> "CloudOptions":
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in known}
        if kwargs.get("async_retry_delays") is not None:
            kwargs["async_retry_delays"] = tuple(kwargs["async_retry_delays"])  # type: ignore[arg-type]
        return cls(**kwargs)  # type: ignore[arg-type]
