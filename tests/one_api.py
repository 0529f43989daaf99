"""A base for test fakes of the service that speak one API (V2 unless told)."""

from __future__ import annotations

from typing import Self

from engine.api.port import ApiFeatures, ApiName
from engine.api.v2 import V2Dialect


class OneApi:
    """Answers ``for_api`` with itself, whatever API a job records, as a router would."""

    features: ApiFeatures = V2Dialect.features

    def for_api(self, api: ApiName) -> Self:
        return self
