"""Step 3: rows become validated V2 requests, each with its job key."""

from engine.prepare.job import PreparedJob
from engine.prepare.keys import DuplicateFilter, body_sha256, canonical_json
from engine.prepare.preparer import Preparer
from engine.prepare.repeats import Repeats

__all__ = ["DuplicateFilter", "PreparedJob", "Preparer", "Repeats", "body_sha256", "canonical_json"]
