"""What ``aioimds doctor`` found: the :class:`Report` and the findings read from probe outcomes.

The functions here send nothing: they turn the :class:`~aioimds.cli.probes.Outcome` of each
probe into problems (which make the exit status 1) and notes (advice, exit status 0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from yarl import URL

from .probes import DROP_RETRIES, PROBE_PATH, THROTTLE_PROBE, Outcome
from .settings import Settings

__all__ = ["HOP_LIMIT_FIX", "THROTTLED_FIX", "Finding", "Report", "answer_notes",
           "hop_limit_text", "put_refused", "tcp_problem", "token_problems"]

HOP_LIMIT_FIX = ("aws ec2 modify-instance-metadata-options --instance-id ID "
                 "--http-put-response-hop-limit 2")
"""The fix for a token PUT whose answer is dropped one hop short (a container)."""
@dataclass
class Finding:
    """A problem (or a note): what is wrong, in one sentence, and what to do."""

    id: str
    problem: str
    fix: str


@dataclass
class Report:
    """Everything doctor found; :meth:`to_json` is the ``--format json`` document."""

    configuration: list[dict[str, str]] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    probes: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)
    summary: str = ""

    @property
    def healthy(self) -> bool:
        """Whether no problem was found."""
        return not self.problems

    @property
    def verdict(self) -> str:
        """The one verdict line."""
        if self.healthy:
            return f"healthy: {self.summary}" if self.summary else "healthy"
        ids = ", ".join(p.id for p in self.problems)
        return f"{len(self.problems)} problem{'s' if len(self.problems) > 1 else ''}: {ids}"

    def probe(self, name: str, verdict: str, detail: str, ms: float | None = None) -> None:
        """Record a probe: ``verdict`` is ``ok``, ``fail``, ``warn`` or ``skip``."""
        self.probes.append({"probe": name, "verdict": verdict, "detail": detail,
                            "ms": None if ms is None else round(ms, 3)})

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON object."""
        return {"healthy": self.healthy, "verdict": self.verdict,
                "configuration": self.configuration, "environment": self.environment,
                "probes": self.probes, "problems": [asdict(p) for p in self.problems],
                "notes": [asdict(n) for n in self.notes]}


def hop_limit_text(what: str, evidence: list[str]) -> str:
    """The hop-limit problem sentence: ``what`` was seen, and the container ``evidence``."""
    where = (f"this process runs in a container ({'; '.join(evidence)}), and there "
             if evidence else "inside a container ")
    return (f"{what}; {where}the usual cause is the instance's hop limit of 1: the PUT's "
            "answer is dropped one network hop short")


def tcp_problem(report: Report, settings: Settings, tcp: Outcome) -> None:
    """The problem of a TCP connect that failed (refused, or no answer)."""
    endpoint = settings.config.base_url
    if tcp.kind == "refused":
        report.problems.append(Finding(
            "connection-refused",
            f"nothing listens at {endpoint} (connection refused): this is not an EC2 instance, "
            f"or the endpoint ({settings.endpoint_reason()}) is wrong",
            "off EC2, run against the embedded emulator with --emulator, or start "
            "'aioimds serve' and point --endpoint (or AWS_EC2_METADATA_SERVICE_ENDPOINT) at it"))
    else:
        report.problems.append(Finding(
            "no-answer",
            f"no answer from {endpoint} ({tcp.detail}): not on EC2, or the instance's metadata "
            "endpoint is turned off",
            "off EC2, use --emulator or --endpoint; on EC2, turn the endpoint on: aws ec2 "
            "modify-instance-metadata-options --instance-id ID --http-endpoint enabled"))


def put_refused(report: Report, settings: Settings, put: Outcome, v1: Outcome) -> None:
    """The token PUT was answered with a status other than 200: name what that status means."""
    cfg = settings.config
    status = put.status or 0
    v1_note = (f"; IMDSv1 fallback is off ({settings.sources['v1_disabled']}), so aioimds "
               "fails" if cfg.v1_disabled else "")
    after = (": clients fall back to IMDSv1" + v1_note if v1.status == 200
             else ", and GETs without a token are not served: no request can get metadata")
    if status >= 500:
        report.problems.append(Finding(
            "token-server-error", f"IMDS answered a server error to the token PUT "
            f"({put.detail}){after}",
            "retry later; if it lasts, check the metadata service (or whatever answers at "
            f"{cfg.base_url})"))
    elif status in (404, 405):
        report.problems.append(Finding(
            "imdsv2-unsupported", f"the token PUT {put.detail}: this endpoint does not support "
            f"IMDSv2 (session tokens){after}",
            "use an endpoint that serves IMDSv2 (every EC2 instance does); an emulator or "
            "proxy in between may not"))
    else:
        url = URL(cfg.base_url)
        host = url.host or ""
        used = report.environment.get("proxies") or {}
        fix = "send IMDS requests directly: nothing between this process and IMDS may add " \
              "X-Forwarded-For (a proxy or a sidecar)"
        if used and not report.environment.get("no_proxy_covers_endpoint"):
            fix += f"; for tools that use the proxy variables: export NO_PROXY={host}" \
                   "${NO_PROXY:+,$NO_PROXY}"
        why = (". IMDS refuses a PUT carrying X-Forwarded-For (403): a proxy in between is "
               "the usual cause" if status == 403 else "")
        report.problems.append(Finding("token-refused", f"the token PUT {put.detail}{after}{why}",
                                       fix))


def token_problems(report: Report, settings: Settings, put: Outcome, v1: Outcome,
                    with_token: Outcome | None, evidence: list[str]) -> None:
    """The problems the token PUT and the GETs without and with its token show. Hop limit
    only for a PUT that timed out while GETs are answered; a dropped PUT was retried first
    (:data:`~aioimds.cli.probes.DROP_RETRIES`); a PUT answered 429 is not looked at here."""
    cfg = settings.config
    v1_note = (f"; IMDSv1 fallback is off ({settings.sources['v1_disabled']}), so aioimds "
               "fails" if cfg.v1_disabled else "")
    if put.kind == "no answer" and v1.status in (200, 401):
        if v1.status == 200:
            report.problems.append(Finding("hop-limit", hop_limit_text(
                "the token PUT got no answer while GETs are answered, and the instance allows "
                "IMDSv1: clients wait one timeout, then fall back to IMDSv1" + v1_note,
                evidence), HOP_LIMIT_FIX))
        else:
            report.problems.append(Finding("hop-limit", hop_limit_text(
                "the token PUT got no answer while GETs are answered, and the instance "
                "requires tokens (401 without one): no request can get metadata", evidence),
                HOP_LIMIT_FIX))
    elif put.kind == "closed":
        report.problems.append(Finding(
            "connection-dropped", f"the endpoint closed the token PUT's connection without an "
            f"answer, {1 + DROP_RETRIES} times ({put.detail})",
            "check what listens at the endpoint and whether something in between resets "
            "connections"))
    elif put.kind in ("no answer", "error"):
        report.problems.append(Finding(
            "no-http-answer", f"the endpoint accepts connections but HTTP requests get no "
            f"answer (token PUT: {put.detail}; GET: {v1.detail})",
            "check that the endpoint is an IMDS and that no firewall holds its answers"))
    elif put.status == 400 or 404 in (v1.status, with_token and with_token.status):
        report.problems.append(Finding(
            "not-imds", f"{cfg.base_url} is not an IMDS (token PUT {put.detail}; "
            f"GET {PROBE_PATH} {v1.detail})",
            "point --endpoint (or AWS_EC2_METADATA_SERVICE_ENDPOINT) at an IMDS"))
    elif put.token is None:
        put_refused(report, settings, put, v1)
    elif with_token is not None and with_token.status not in (200, 429) \
            and (with_token.status or 0) < 500:
        report.problems.append(Finding(
            "token-rejected", f"the token PUT answered but a GET with its token "
            f"{with_token.detail}",
            "check that one IMDS answers both requests (nothing in front of the endpoint)"))
    if v1.status == 200 and put.token is not None:
        report.notes.append(Finding(
            "imdsv1-allowed", "the instance answers requests without a token (IMDSv1)",
            "require tokens: aws ec2 modify-instance-metadata-options --instance-id ID "
            "--http-tokens required"))


THROTTLED_FIX = ("send fewer requests at once; cache what does not change (instance id, "
                 "region)")


def answer_notes(report: Report, seen: dict[str, Outcome], burst: dict[str, int]) -> None:
    """429s and 5xx answers of the single probes (and 5xx of the burst)."""
    limited = [name for name, out in seen.items() if out.status == 429]
    if limited and not any(n.id == "throttled" for n in report.notes):
        report.notes.append(Finding(
            "throttled", f"the service throttled {len(limited)} of {len(seen)} single requests "
            f"(429: {', '.join(limited)}): it limits the request rate. aioimds paces itself "
            "and retries; tools that do not may fail", THROTTLED_FIX))
    errors = [name for name, out in seen.items() if out.status and out.status >= 500
              and name != "token PUT"]
    total = len(errors) + burst.get("5xx", 0)
    if total:
        sent = len(seen) - ("token PUT" in seen) + (THROTTLE_PROBE if burst else 0)
        report.problems.append(Finding(
            "server-errors", f"{total} of {sent} GETs were answered with a server error (5xx)"
            + (f": {', '.join(errors)}" if errors else " in the burst")
            + ". aioimds retries them, but each costs a retry and a failing service may "
            "time out", "retry later; if it lasts, check the metadata service"))
