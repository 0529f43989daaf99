"""Which service a ledger belongs to: the sandbox, or one address and account.

A ledger's jobs are videos of the service they were sent to. Run against another
(a sandbox trial's ledger, then the real service), its submitted jobs would count
as done and nothing would be sent, and the export would hand out the sandbox's
links. So the first run that may send (or the first ``poll`` or ``reconcile``)
records the service in the ledger's meta table, and any later one against
another service is refused before anything is sent.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from engine.errors import ConfigError
from engine.ledger.store import Ledger
from engine.service import Service, is_loopback, sandbox_state_file

log = logging.getLogger(__name__)

META_NAME = "service"
#: Hex digits of the key's digest kept: enough to tell accounts apart, too few to matter.
FINGERPRINT_HEX = 12
_SALT = b"heygen-batch:"
_SUFFIX = ".ledger.db"
#: Statuses of jobs that reached a service (or may have): a ledger holding any is bound.
_SENT = ("submitting", "submitted", "uncertain", "failed")
#: The first binding, unless another process recorded one meanwhile (then that one holds).
_FIRST = "INSERT INTO meta (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING"


def key_fingerprint(key: str) -> str:
    """A short digest naming an account without holding its key: the first
    ``FINGERPRINT_HEX`` hex digits of sha256("heygen-batch:" + key)."""
    return hashlib.sha256(_SALT + key.encode()).hexdigest()[:FINGERPRINT_HEX]


def account_id(base_url: str, key: str | None) -> str:
    """Who a rate limit is shared by: an address and key, as a short digest that holds
    neither the key nor anything to recover it by (``key_fingerprint``'s salted hash)."""
    account = key_fingerprint(key) if key else ""
    return hashlib.sha256(f"{base_url.rstrip('/')}\0{account}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Binding:
    #: None for the built-in sandbox.
    base_url: str | None
    #: ``key_fingerprint`` of the API key; None for the sandbox (or no key).
    account: str | None

    @classmethod
    def of(cls, service: Service) -> Binding:
        if service.is_sandbox:
            return cls(None, None)
        key = service.api_key
        return cls(service.base_url, key_fingerprint(key) if key else None)

    @classmethod
    def parse(cls, text: str) -> Binding:
        value = json.loads(text)
        return cls(value.get("base_url"), value.get("account"))

    def text(self) -> str:
        return json.dumps({"base_url": self.base_url, "account": self.account})

    @property
    def local(self) -> bool:
        """A sandbox: the built-in one, or one on this machine (a standalone ``heygen-batch
        sandbox`` on loopback): never the same service as a real one."""
        if self.base_url is None:
            return True
        return is_loopback(urlsplit(self.base_url).hostname or "")

    def may_become(self, other: Binding) -> bool:
        """Whether ``--rebind`` may move a ledger from this service to ``other``: the same
        service under a new key or address, so never between a sandbox and a real one."""
        return (
            self.base_url is not None and other.base_url is not None and (self.local == other.local)
        )

    def describe(self) -> str:
        if self.base_url is None:
            return "the built-in sandbox"
        account = f" with the API key whose fingerprint is {self.account}" if self.account else ""
        return f"{self.base_url}{account}"

    @property
    def tag(self) -> str:
        """What a ledger name of this service's own carries: ``sandbox`` or the account."""
        return "sandbox" if self.base_url is None else (self.account or "service")

    def ledger_for(self, ledger: Path, held: Binding | None = None) -> Path:
        """A ledger name of this service's own, beside ``ledger`` (whose name may carry
        ``held``'s tag already: it is replaced, not doubled)."""
        stem, suffix = ledger.stem, ledger.suffix
        if ledger.name.endswith(_SUFFIX):
            stem, suffix = ledger.name.removesuffix(_SUFFIX), _SUFFIX
        return ledger.with_name(f"{self._untagged(stem, held, '.')}.{self.tag}{suffix}")

    def campaign_for(self, campaign: str, held: Binding | None = None) -> str:
        """A campaign name of this service's own, as ``ledger_for`` makes a file's."""
        return f"{self._untagged(campaign, held, '_')}_{self.tag}"

    def _untagged(self, name: str, held: Binding | None, sep: str) -> str:
        for tag in {"sandbox", self.tag, *(() if held is None else (held.tag,))}:
            name = name.removesuffix(f"{sep}{tag}")
        return name

    def own(self, ledger: Ledger, held: Binding | None = None) -> tuple[str, str]:
        """The option giving this service a ledger of its own beside ``ledger``, and its
        value: a file (``--ledger``) or, in a database, a campaign (``--campaign``)."""
        if ledger.file is not None:
            return "--ledger", str(self.ledger_for(ledger.file, held))
        return "--campaign", self.campaign_for(ledger.campaign or "", held)


def bind_ledger(ledger: Ledger, service: Service, rebind: bool = False) -> bool:
    """Refuse ``service`` if ``ledger`` belongs to another; else record it as the
    ledger's. True when it was recorded now (it was the ledger's first).

    ``rebind`` (``--rebind``): the user says ``service`` is the ledger's own under a new
    key or address; it is recorded instead, unless one of the two is the sandbox.

    A ledger from before bindings that has sent jobs and has the sandbox's state
    file beside it was a sandbox trial: it is taken as bound to the sandbox.

    Raises ConfigError (exit 2) naming the ``--ledger`` to use instead.
    """
    wanted = Binding.of(service)
    held_text = ledger.meta(META_NAME)
    held = Binding.parse(held_text) if held_text else _inferred(ledger)
    if held is None:
        ledger.transaction([(_FIRST, (META_NAME, wanted.text()))])
        if ledger.meta(META_NAME) == wanted.text():
            return True
        # Another worker bound it first, maybe to another service: judged as any binding.
        return bind_ledger(ledger, service, rebind)
    if held == wanted:
        if held_text is None:
            ledger.set_meta(META_NAME, wanted.text())
        return False
    if rebind and held.may_become(wanted):
        log.warning("%s: bound to %s from now on (--rebind)", ledger.describe(), wanted.describe())
        ledger.set_meta(META_NAME, wanted.text())
        return False
    raise ConfigError(_refusal(ledger, held, wanted))


def reached_service(counts: dict[str, int]) -> bool:
    """Whether a ledger whose jobs stand at ``counts`` (by status) sent any to a service."""
    return any(counts.get(status, 0) for status in _SENT)


def unbind(ledger: Ledger, service: Service) -> None:
    """Forget ``ledger``'s binding to ``service``, recorded by a run that reached no
    service (a refused key, a wrong address): the first run that sends binds it, so the
    right key or address is not refused for a mistake that sent nothing. A binding to
    another service (recorded since, with ``--rebind``) is kept."""
    ledger.transaction(
        [("DELETE FROM meta WHERE name = ? AND value = ?", (META_NAME, Binding.of(service).text()))]
    )


def unsent(
    ledger: Ledger, service: Service, counts: dict[str, int], refused: Exception | None
) -> None:
    """After a worker that bound ``ledger`` (a campaign whose jobs now stand at
    ``counts``) to ``service``: undo that binding when nothing reached a service and
    nothing could be sent: the service ``refused`` the key or the address (the run's
    abort), or nothing is left to send. So a worker started once with a wrong key does
    not lock the campaign to it. While jobs are pending without a refusal, another
    worker of the same key may be about to send one: its binding stays."""
    if reached_service(counts) or (refused is None and counts.get("pending")):
        return
    unbind(ledger, service)


def _refusal(ledger: Ledger, held: Binding, wanted: Binding) -> str:
    """Why ``ledger`` (bound to ``held``) is refused for ``wanted``, and the fix: first how
    to go on with this ledger's own service, then the other service's own ledger."""
    said = (
        f"{ledger.describe()} belongs to {held.describe()}, and this run is against "
        f"{wanted.describe()}: its jobs are that service's videos, and here they would count "
        "as done. Nothing was sent. "
    )
    own = " ".join(wanted.own(ledger, held))
    if held.base_url is None:
        trials = held.own(ledger)[1]
        here = str(ledger.file) if ledger.file is not None else ledger.campaign
        keep = f" (and keep sandbox trials in {trials})" if trials != here else ""
        return (
            said + f"It holds a sandbox trial: give the real campaign its own ledger: {own}{keep}."
        )
    if wanted.base_url is None:
        return said + f"Keep sandbox trials in a ledger of their own: {own}."
    if held.account == wanted.account:
        return (
            said + f"To go on with this ledger, run with --base-url {held.base_url} (or set "
            "HEYGEN_BASE_URL to it)"
            + (
                "; if this address reaches the same service (a proxy), " + _rebind_once(ledger)
                if held.may_become(wanted)
                else ""
            )
            + ". Only for a different service, start a ledger of its own, "
            f"{own}, where every job would be sent (and paid) again."
        )
    return (
        said + "It was run with another API key: to go on with it, set HEYGEN_API_KEY to "
        "that key"
        + (
            ", or, if this is the same account's new key (a rotated key), " + _rebind_once(ledger)
            if held.may_become(wanted)
            else ""
        )
        + f". Only for a different account, start a ledger of its own, {own}, where every "
        "job would be sent (and paid) again."
    )


def _rebind_once(ledger: Ledger) -> str:
    """How to rebind ``ledger``: ``worker`` (and ``run`` on a database) have no --rebind."""
    if ledger.file is not None:
        return "add --rebind once"
    return "run `heygen-batch poll --rebind` once with the same --ledger and --campaign"


def _inferred(ledger: Ledger) -> Binding | None:
    if ledger.file is None or not sandbox_state_file(ledger.file).exists():
        return None
    counts = ledger.counts()
    if counts["submitted"] + counts["uncertain"] + counts["failed"] == 0:
        return None
    return Binding(None, None)
