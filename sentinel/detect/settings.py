"""Detection settings (placeholder until the detection engine lands)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class DetectionSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)
