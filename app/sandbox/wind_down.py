"""The fine-tuning service's staged wind-down, as the sandbox emulates it (OpenAI's
announcement of 2026-05-07):

1. on the announcement, organizations that had never fine-tuned lost job creation;
2. on the inactive cutoff, organizations without fine-tuned inference in the window of days
   before it lost it;
3. after the final cutoff no organization can create jobs.

A refused create is HTTP 403 with code ``training_not_available``, the live API's code.
The dates are the OpenAI provider's declared lifecycle (providers/openai/lifecycle.toml),
so the sandbox and ftm's own warnings can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

from app.sandbox.errors import ApiError

REFUSAL_CODE = "training_not_available"
ORG_PROFILES = ("active", "inactive", "new")
"""Emulated histories: fine-tuned with recent fine-tuned inference; fine-tuned but no
fine-tuned inference before the inactive cutoff; never fine-tuned."""


@dataclass(frozen=True)
class WindDown:
    announced: date
    inactive_cutoff: date
    inactive_window_days: int
    final_cutoff: date

    @classmethod
    def declared(cls) -> WindDown:
        """The stages as the OpenAI provider declares them."""
        from providers.openai.lifecycle import load_lifecycle

        lc = load_lifecycle()
        if lc.announced is None or lc.inactive_cutoff is None or lc.job_creation_cutoff is None:
            raise ValueError("providers/openai/lifecycle.toml lacks a wind-down stage date")
        return cls(
            lc.announced, lc.inactive_cutoff, lc.inactive_window_days, lc.job_creation_cutoff
        )

    @property
    def window_start(self) -> date:
        """The first day whose fine-tuned inference kept an organization's access."""
        return self.inactive_cutoff - timedelta(days=self.inactive_window_days)


@dataclass
class OrgHistory:
    """What the wind-down looks at in an organization's past."""

    fine_tuned: bool = False
    """It had created a fine-tuning job (before the announcement)."""
    inference_days: set[date] = field(default_factory=set)
    """Days it ran inference on one of its fine-tuned models."""

    @classmethod
    def profile(cls, name: str, stages: WindDown) -> OrgHistory:
        """An emulated history by name (`ORG_PROFILES`)."""
        if name == "active":
            return cls(True, {stages.inactive_cutoff - timedelta(days=1)})
        if name == "inactive":
            return cls(True, {stages.window_start - timedelta(days=1)})
        if name == "new":
            return cls(False, set())
        raise ValueError(f"unknown organization profile {name!r}; known: {', '.join(ORG_PROFILES)}")

    def to_state(self) -> dict:
        return {
            "fine_tuned": self.fine_tuned,
            "inference_days": sorted(d.isoformat() for d in self.inference_days),
        }

    @classmethod
    def from_state(cls, data: dict) -> OrgHistory:
        return cls(
            bool(data.get("fine_tuned")),
            {date.fromisoformat(d) for d in data.get("inference_days", [])},
        )


def refusal(
    stages: WindDown | None, org: OrgHistory | None, final_cutoff: date | None, today: date
) -> ApiError | None:
    """The 403 a job create gets ``today``, or None when it is accepted.

    ``final_cutoff`` applies to every organization; ``stages`` with ``org`` add the earlier
    stages (None: emulate an organization the earlier stages spared).
    """
    reason = None
    if final_cutoff is not None and today > final_cutoff:
        reason = (
            f"the service stopped accepting new fine-tuning jobs after {final_cutoff.isoformat()}"
        )
    elif stages is not None and org is not None:
        if today >= stages.announced and not org.fine_tuned:
            reason = (
                f"since {stages.announced.isoformat()} only organizations that have "
                "fine-tuned before can create fine-tuning jobs"
            )
        elif today >= stages.inactive_cutoff and not any(
            stages.window_start <= d < stages.inactive_cutoff for d in org.inference_days
        ):
            reason = (
                f"since {stages.inactive_cutoff.isoformat()} only organizations with "
                f"fine-tuned model inference in the {stages.inactive_window_days} days "
                "before it can create fine-tuning jobs"
            )
    if reason is None:
        return None
    return ApiError(
        403,
        f"Fine-tuning is not available for this organization: {reason}. Existing fine-tuned "
        "models keep serving until their base model is retired. (ftm sandbox: emulated "
        "wind-down)",
        type="invalid_request_error",
        code=REFUSAL_CODE,
    )
