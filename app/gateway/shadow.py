"""What shadow traffic says about a candidate: how often it answered as production did,
how fast, how often it failed. Read from ``shadow_answers`` (written by the gateway
through `app.gateway.request_log.RequestLog.record_shadow`); shown beside the
candidate's eval in `ftm compare`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from sqlalchemy import Engine
from sqlmodel import select

from db.engine import read_session
from db.models import ShadowAnswer


@dataclass(frozen=True)
class ShadowFigures:
    provider: str
    model: str
    pairs: int
    """Shadowed requests stored (answered or failed)."""
    identical_share: float | None
    """Of the pairs where both answered, the share of candidate answers identical to
    production's once whitespace is normalised; None when there are none."""
    mean_latency_ms: float | None
    """Mean latency of the candidate's successful answers."""
    errors: int
    """Pairs where the candidate failed (status not 2xx)."""

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        identical = "-" if self.identical_share is None else f"{self.identical_share:.1%}"
        latency = "-" if self.mean_latency_ms is None else f"{self.mean_latency_ms:.0f} ms"
        return (
            f"{self.pairs} shadow pairs: {identical} identical to production, "
            f"mean latency {latency}, {self.errors} errors"
        )


def normalised(text: str | None) -> str:
    """``text`` with runs of whitespace made one space and the ends trimmed."""
    return " ".join((text or "").split())


def figures(engine: Engine, task: str) -> dict[tuple[str, str], ShadowFigures]:
    """The shadow figures of every candidate shadowed on ``task``, by (provider, model)."""
    with read_session(engine) as session:
        rows = session.exec(
            select(
                ShadowAnswer.candidate_provider,
                ShadowAnswer.candidate_model,
                ShadowAnswer.primary_text,
                ShadowAnswer.candidate_text,
                ShadowAnswer.candidate_latency_ms,
                ShadowAnswer.candidate_status,
            ).where(ShadowAnswer.task == task)
        ).all()
    grouped: dict[tuple[str, str], list] = {}
    for row in rows:
        grouped.setdefault((row[0], row[1]), []).append(row)
    return {key: _figures(key, pairs) for key, pairs in grouped.items()}


def _figures(key: tuple[str, str], pairs: list) -> ShadowFigures:
    ok = [p for p in pairs if 200 <= p[5] < 300]
    compared = [p for p in ok if p[2] is not None]
    same = sum(normalised(p[2]) == normalised(p[3]) for p in compared)
    latencies = [p[4] for p in ok if p[4] is not None]
    return ShadowFigures(
        provider=key[0],
        model=key[1],
        pairs=len(pairs),
        identical_share=same / len(compared) if compared else None,
        mean_latency_ms=sum(latencies) / len(latencies) if latencies else None,
        errors=len(pairs) - len(ok),
    )
