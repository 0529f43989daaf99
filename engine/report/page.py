"""The report page: facts and charts laid out by one Jinja2 template, written atomically.

Jinja2 escapes every value (``autoescape``); only the charts, SVG that ElementTree
wrote and escaped, go in as markup. The page loads nothing and runs nothing: its
Content-Security-Policy forbids scripts and every network load.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from engine.ledger.store import Ledger
from engine.report import charts
from engine.report.facts import CREDIT_BASIS, Facts, percentile, read_facts

#: What an attempt's outcome means, for the requests table.
_MEANINGS = {
    "ok": "the service answered with a video_id",
    "http 429": "rate limited: the pool paused for the Retry-After",
    "RequestTimeout": "no answer in time",
    "ConnectionDropped": "the connection broke after the request was sent",
    "ConnectFailed": "no connection could be made",
    "UnreadableAnswer": "a success without a video_id",
}


@dataclass(frozen=True, slots=True)
class Spread:
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        return cls(
            percentile(values, 0.5),
            percentile(values, 0.9),
            percentile(values, 0.99),
            max(values) if values else None,
        )


def _meaning(outcome: str) -> str:
    if outcome in _MEANINGS:
        return _MEANINGS[outcome]
    if outcome.startswith("http 5"):
        return "a fault at the service"
    if outcome.startswith("http 4"):
        return "refused by the service"
    return "no answer"


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} ms"


def _secs(value: float | None) -> str:
    if value is None:
        return "n/a"
    if value >= 3600:
        return f"{value / 3600:,.1f} h"
    if value >= 120:
        return f"{value / 60:,.1f} min"
    return f"{value:,.1f} s"


def _charts(facts: Facts) -> dict[str, Markup | None]:
    return {
        "statuses": charts.counts_bar("Jobs by status", facts.statuses),
        "renders": charts.counts_bar("Render outcomes of submitted jobs", facts.renders),
        "over_time": (
            charts.over_time(facts.submitted_times, facts.completed_times)
            if facts.submitted_times
            else None
        ),
        "latency": charts.latency_histogram(facts.latencies_ms) if facts.requests else None,
        "render": charts.render_histogram(facts.render_s) if facts.render_s else None,
        "estimate": charts.estimate_scatter(facts.spend.pairs) if facts.spend.pairs else None,
    }


def render_page(facts: Facts, generated: datetime) -> str:
    """The whole HTML document for ``facts``, written at ``generated``."""
    env = Environment(
        loader=PackageLoader("engine.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    template = env.get_template("report.html.j2")
    return template.render(
        facts=facts,
        charts=_charts(facts),
        latency=Spread.of(facts.latencies_ms),
        render=Spread.of(facts.render_s),
        generated=generated.strftime("%Y-%m-%d %H:%M:%S UTC"),
        credit_basis=CREDIT_BASIS,
        ms=_ms,
        secs=_secs,
        meaning=_meaning,
    )


def write_report(ledger: Ledger, output: Path) -> Facts:
    """Write the report of ``ledger`` to ``output`` (replaced whole, never half-written).

    Raises ``OSError`` when ``output`` cannot be written.
    """
    facts = read_facts(ledger)
    page = render_page(facts, datetime.now(UTC))
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=output.parent, prefix=f".{output.name}.")
    try:
        # mkstemp makes the file private; a report is for people to open.
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(page)
        os.replace(tmp, output)
    except BaseException:
        os.unlink(tmp)
        raise
    return facts
