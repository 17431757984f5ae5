"""Speculation for the crawl: ask for documented paths before the listings that name them.

A plain crawl needs one round trip per level of the tree (D of them, the token PUT included),
however many requests it may have in flight. The tree's shape is documented
(:mod:`aioimds.catalogue`, from the EC2 user guide's "Instance metadata categories"), so
:class:`Speculation` asks for paths it can predict alongside the listings that would reveal them:

- at the start, the listings down to the deepest documented paths and the leaves almost every
  instance lists (:data:`START`);
- when a listing names a category whose own listing has not arrived, the category's documented
  children (:data:`AHEAD`: ``iam/`` -> ``iam/security-credentials/``, ...);
- from values already fetched: the MAC in ``meta-data/mac`` gives the interface's listing and
  leaves under ``network/interfaces/macs/MAC/``; a guessed ``security-credentials/`` listing
  gives the role's document (:data:`FOLLOW`).

Only what was listed is recorded: an answer to a guess is handed to the crawl when, and only
when, the listing above it names the path (:meth:`Speculation.claim`), so a dump with
speculation equals one without it. A guess its listing does not name is dropped unsent when the
listing came first, and discarded unrecorded when it came second (a wasted request). A failed
guess is only a miss (retried once when no answer or a 5xx came): the path is fetched as usual
once listed. A guess never waits for a slot or a paced turn (:class:`GuessSlots`). Speculation
stops while the service throttles (``allowed``), stops predicting a documented path once a
listing shows it missing, and stops altogether after :data:`MAX_MISSES` guesses missed or
failed.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass

from . import catalogue as c
from .errors import IMDSConnectionError, IMDSError, IMDSHTTPError, IMDSTimeoutError
from .pacing import AdaptiveLimit
from .paths import ROOT, child_path, is_listing, parse_listing
from .snapshot import Record

__all__ = ["AHEAD", "FLYING", "FOLLOW", "GUESS_ATTEMPTS", "MAX_GUESSES", "MAX_MISSES", "START",
           "GuessNotSent", "GuessSlots", "Speculation", "SpeculationStats"]

START = (
    c.META_DATA, c.NETWORK, c.INTERFACES, c.MAC_INTERFACES, c.MAC, c.PLACEMENT, c.SERVICES,
    c.BLOCK_DEVICE_MAPPING, c.PUBLIC_KEYS, *c.BASIC_LEAVES,
)
"""Paths (relative to ``latest/``) asked for with ``/latest/`` itself: the listings above the
deepest documented paths, ``meta-data/mac`` (it names the interface) and the leaves almost every
instance lists (:data:`~aioimds.catalogue.BASIC_LEAVES`), so the first round of requests is
full."""

AHEAD: dict[str, tuple[str, ...]] = {
    c.DYNAMIC: ("instance-identity/", "instance-identity/document", "fws/"),
    c.INSTANCE_IDENTITY: ("document",),
    c.FWS: ("instance-monitoring",),
    c.IAM: ("info", "security-credentials/"),
    c.EVENTS: ("maintenance/",),
    c.TAGS: ("instance/",),
    c.IDENTITY_CREDENTIALS: ("ec2/", "ec2/info", "ec2/security-credentials/"),
    c.ELASTIC_INFERENCE: ("associations/",),
    c.ELASTIC_GPUS: ("associations/",),
    c.PUBLIC_KEYS + "*/": ("openssh-key",),
    c.MAC_INTERFACES + "*/": c.INTERFACE_LEAVES,
}
"""A listing (``*`` is any one name) -> its documented children, asked for as soon as a
listing names it, before its own listing arrives. Only children (almost) every such listing
has: ``events/recommendations/``, ``dynamic/instance-identity/pkcs7`` and the like wait for
their listing."""

FOLLOW = frozenset({c.CREDENTIALS, c.EC2_IDENTITY + "security-credentials/"})
"""Guessed listings whose entries are asked for as soon as they arrive (the role's document),
before the listing above confirms them."""

GUESS_ATTEMPTS = 2
"""Attempts per guess (the fetch given makes one): a failed guess costs only its requests, since
the path is fetched with the crawl's full retry budget once its listing names it."""
MAX_GUESSES = 4096
"""Most guesses one crawl makes (a listing naming a million interfaces gets no more)."""
MAX_MISSES = 16
"""Guesses missed (not listed) or failed after which a crawl stops speculating: the tree is not
the documented one, or the service fails."""

_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
_MAC_PATH = ROOT + c.MAC
_META = ROOT + c.META_DATA
_PUBLIC_IPV4 = ROOT + c.PUBLIC_IPV4
_WILD = re.compile(f"^({re.escape(c.MAC_INTERFACES)}|{re.escape(c.PUBLIC_KEYS)})[^/]+/")

_QUEUED, _FLYING, _DONE, _CLAIMED, _DROPPED = range(5)
FLYING = object()
"""What :meth:`Speculation.claim` returns for a guess still in flight: the worker that sent it
hands its answer to the crawl (:meth:`Speculation.landed` returns the depth)."""

Fetch = Callable[[str], Awaitable[Record]]


class GuessNotSent(IMDSError):
    """A guess found no free, unpaced slot (:class:`GuessSlots`) and was not sent."""


class GuessSlots(AdaptiveLimit):
    """A dump's limiter as its guesses use it: a guess takes a slot only when one is free at
    once and requests are not paced (:meth:`AdaptiveLimit.try_acquire`). It never waits, so a
    guess never takes a paced turn from a listed request: while the service throttles, or
    while every slot is busy, it is not sent (:meth:`acquire` raises
    :class:`~aioimds.IMDSError`) and the path is fetched as usual once listed.

    Args:
        shared: the dump's limiter; answers to guesses still count in it (a 429 paces all).
    """

    def __init__(self, shared: AdaptiveLimit) -> None:
        super().__init__(shared.maximum)
        self.shared = shared

    @property
    def throttling(self) -> bool:
        """As the shared limiter."""
        return self.shared.throttling

    def try_acquire(self) -> int | None:
        """A slot of the shared limiter at once, or ``None``."""
        return self.shared.try_acquire()

    async def acquire(self) -> int:
        """Never waits: raises :class:`GuessNotSent`."""
        raise GuessNotSent("guess not sent: no free slot, or requests are paced")

    def release(self, ticket: int, *, throttled: bool, status: int | None = None,
                counted: bool = True, retry_after: float | None = None) -> None:
        """Give the slot back to the shared limiter."""
        self.shared.release(ticket, throttled=throttled, status=status, counted=counted,
                            retry_after=retry_after)


@dataclass
class SpeculationStats:
    """What speculation cost a crawl.

    Attributes:
        sent: guesses sent (requests a plain crawl would have sent later, or never).
        kept: guesses whose answer the crawl recorded (their listing named them).
    """

    sent: int = 0
    kept: int = 0

    @property
    def wasted(self) -> int:
        """Guesses sent and not recorded: the extra requests speculation cost."""
        return self.sent - self.kept


class Speculation:
    """The guesses of one crawl, their answers and what the tree showed so far.

    Args:
        fetch: ``fetch(request_path) -> Record`` (200 or 404) for one attempt at a guess; an
            :class:`~aioimds.IMDSError` it raises only costs the guess an attempt.
        known: the request paths the crawl has already taken from listings (never guessed).
        allowed: whether guessing is allowed now (false while the service throttles).
        root: the crawl's root listing; only ``/latest/`` has a catalogue.
    """

    def __init__(self, fetch: Fetch, known: Collection[str], *,
                 allowed: Callable[[], bool] = lambda: True, root: str = ROOT) -> None:
        self.stats = SpeculationStats()
        self.awaited = 0
        """Guesses in flight that a listing named: the crawl waits for their answers."""
        self._fetch = fetch
        self._known = known
        self._allowed = allowed
        self._state: dict[str, int] = {}
        self._answers: dict[str, Record | None] = {}
        self._depth: dict[str, int] = {}
        self._listings: deque[str] = deque()
        self._leaves: deque[str] = deque()
        self._named: dict[str, frozenset[str]] = {}  # listing -> its children, once answered
        self._under: dict[str, list[str]] = {}  # listing -> the guesses right below it
        self._missed: set[str] = set()  # catalogue keys a listing showed missing
        self._misses = 0
        self._mac: str | None = None
        self._public = False
        self._stopped = root != ROOT

    # -- what the crawl asks -----------------------------------------------------------------

    def start(self) -> int:
        """Queue the :data:`START` guesses; returns how many."""
        return self._guess(ROOT + rel for rel in START)

    def stop(self) -> None:
        """Guess no more (the crawl is abandoning the service)."""
        self._stopped = True
        self._listings.clear()
        self._leaves.clear()

    def take(self, *, leaf: bool) -> str | None:
        """The next guess to send, a listing or (``leaf=True``) a leaf, or ``None``. Guesses a
        listing already refuted, claimed ones and all of them while not allowed are dropped."""
        queue = self._leaves if leaf else self._listings
        while queue:
            path = queue.popleft()
            if self._state[path] != _QUEUED:
                continue  # claimed meanwhile: the crawl fetches it as a listed path
            if not self._active() or self._refuted(path):
                self._state[path] = _DROPPED
                continue
            self._state[path] = _FLYING
            self.stats.sent += 1
            return path
        return None

    async def send(self, path: str) -> Record | None:
        """Fetch the guess ``path``, up to :data:`GUESS_ATTEMPTS` times while guessing is
        allowed (never while the service throttles); ``None`` when it failed (never raises
        IMDSError)."""
        for attempt in range(1, GUESS_ATTEMPTS + 1):
            try:
                return await self._fetch(path)
            except GuessNotSent:
                self.stats.sent -= attempt == 1  # never on the wire: not a request
                return None
            except IMDSError as exc:
                if attempt == GUESS_ATTEMPTS or not _transient(exc) or not self._active():
                    self._misses += 1
                    return None
        return None

    def landed(self, path: str, record: Record | None) -> tuple[int | None, int]:
        """Take the answer to a guess. Returns the crawl depth when the path was claimed while
        in flight (the caller then records ``record``, or fetches the path when it is
        ``None``), else ``None``; and how many new guesses it queued."""
        claimed = self._state[path] == _CLAIMED
        if claimed:
            self.awaited -= 1
            self.stats.kept += record is not None
        else:
            self._state[path] = _DONE
            self._answers[path] = record
        added = 0
        if record is not None and not claimed:
            if record.status == 200:
                added = self.learn(path, record, follow=True)
            elif is_listing(path):
                self._named.setdefault(path, frozenset())  # nothing below a 404 listing
        return (self._depth.pop(path) if claimed else None), added

    def claim(self, path: str, depth: int) -> object:
        """A listing named ``path``: its guessed answer (a Record), :data:`FLYING`, or ``None``
        when the crawl must fetch it (not guessed, not sent yet, or the guess failed)."""
        state = self._state.get(path)
        if state == _DONE:
            record = self._answers.pop(path)
            self._state[path] = _CLAIMED
            if record is not None:
                self.stats.kept += 1
            return record
        if state == _FLYING:
            self._state[path] = _CLAIMED
            self._depth[path] = depth
            self.awaited += 1
            return FLYING
        if state == _QUEUED:
            self._state[path] = _CLAIMED
        return None

    def learn(self, path: str, record: Record, *, follow: bool = False) -> int:
        """Predict from an answer of status 200, listed or guessed: ``meta-data/mac`` names
        the interface; a guessed listing is read as by :meth:`listed` (``follow``: also ask
        for the entries of a :data:`FOLLOW` listing). Returns how many guesses it queued."""
        if self._stopped:
            return 0
        if path == _MAC_PATH:
            mac = record.body.decode("ascii", "replace").strip().lower()
            if not _MAC.fullmatch(mac):
                return 0
            self._mac = mac
            return self._interface()
        if not is_listing(path) or path in self._named:
            return 0
        try:
            children = [child_path(path, e) for e in parse_listing(record.body, path)]
        except IMDSError:
            return 0  # the crawl reports it if the listing is listed
        added = self.listed(path, children)
        if follow and path[len(ROOT):] in FOLLOW:
            added += self._guess(children)
        return added

    def listed(self, path: str, children: Iterable[str]) -> int:
        """The listing ``path`` names ``children`` (request paths): guesses below it that it
        does not name are dropped or counted as misses; a category it names whose listing has
        not arrived gets its :data:`AHEAD` guesses. Returns how many guesses it queued."""
        if self._stopped or path in self._named:
            return 0
        named = self._named[path] = frozenset(children)
        self._count_misses(path, named)
        added = 0
        if path == _META and _PUBLIC_IPV4 in named:
            self._public = True
            added += self._interface()
        for child in named:
            if child[-1] == "/" and child not in self._named:
                ahead = AHEAD.get(_key(child))
                if ahead:
                    added += self._guess(child + tail for tail in ahead)
        return added

    # -- inside ------------------------------------------------------------------------------

    def _active(self) -> bool:
        return not self._stopped and self._misses < MAX_MISSES and self._allowed()

    def _interface(self) -> int:
        """Guesses from the MAC: its listing and leaves, and its public-IP associations when
        ``meta-data/`` lists ``public-ipv4``."""
        if self._mac is None:
            return 0
        base = ROOT + c.MAC_INTERFACES + self._mac + "/"
        paths = [base, *(base + leaf for leaf in c.INTERFACE_LEAVES)]
        if self._public:
            paths.append(base + "ipv4-associations/")
        return self._guess(paths)

    def _guess(self, paths: Iterable[str]) -> int:
        if not self._active():
            return 0
        added = 0
        for path in paths:
            if len(self._state) >= MAX_GUESSES:
                break
            if path in self._state or path in self._known or _key(path) in self._missed:
                continue
            self._state[path] = _QUEUED
            self._under.setdefault(_parent(path), []).append(path)
            (self._listings if is_listing(path) or path.endswith("/mac") else
             self._leaves).append(path)
            added += 1
        return added

    def _refuted(self, path: str) -> bool:
        """Whether an answered listing above ``path`` does not lead to it."""
        parent = path
        while True:
            cut = parent.rstrip("/").rfind("/")
            if cut < len(ROOT) - 1:
                return False
            child, parent = parent, parent[:cut + 1]
            named = self._named.get(parent)
            if named is not None and child not in named:
                self._missed.add(_key(path))
                return True

    def _count_misses(self, listing: str, children: frozenset[str]) -> None:
        """Guesses right below ``listing`` that it does not name: queued ones are dropped,
        sent ones are misses, and their catalogue key is not guessed again."""
        for path in self._under.pop(listing, ()):
            if path in children:
                continue
            self._missed.add(_key(path))
            state = self._state[path]
            if state == _QUEUED:
                self._state[path] = _DROPPED
            elif state in (_FLYING, _DONE):
                self._misses += 1


def _transient(exc: IMDSError) -> bool:
    """Whether another attempt may succeed: no answer, or a server error (not a 429, which
    stops guessing, nor a redirect or a page that is not IMDS)."""
    if isinstance(exc, (IMDSConnectionError, IMDSTimeoutError)):
        return True
    return isinstance(exc, IMDSHTTPError) and (exc.status or 0) >= 500


def _parent(path: str) -> str:
    return path[:path.rstrip("/").rfind("/") + 1]


def _key(path: str) -> str:
    """A path's catalogue key: relative to ``latest/``, an interface's MAC or a key's index as
    ``*`` (so a miss on one interface stops that guess for the others)."""
    return _WILD.sub(r"\1*/", path[len(ROOT):], count=1)
