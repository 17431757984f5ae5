"""``aioimds doctor``: why can (or can't) this process reach IMDS?

It shows the effective configuration and where each value came from, reads the environment
(proxy variables, ``AWS_EC2_METADATA_DISABLED``, signs of a container), runs the probes of
:mod:`aioimds.cli.probes` against the configured endpoint, and ends with one verdict line and a
fix for each problem found (:mod:`aioimds.cli.findings`). Exit status 0 when healthy, 1
otherwise. Notes (IMDSv1 allowed, a 429 on any probe or a throttled burst) are advice and leave
the exit status alone.

The IPv6 probe runs only when IPv4 fails and the endpoint is the default IPv4 one (or when a
caller sets :data:`IPV6_PROBE_ENDPOINT`, as the tests do): a custom endpoint that fails says
nothing about the instance's IPv6 endpoint.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from typing import BinaryIO

from yarl import URL

from ..config import DEFAULT_ENDPOINT_IPV4, DEFAULT_ENDPOINT_IPV6
from ..errors import IMDSConfigError
from .environment import ContainerPaths, container_evidence, proxies, proxy_bypassed
from .findings import (
    HOP_LIMIT_FIX,
    THROTTLED_FIX,
    Finding,
    Report,
    answer_notes,
    tcp_problem,
    token_problems,
)
from .probes import LATENCY_SAMPLES, THROTTLE_PROBE, Outcome, Prober
from .settings import Settings, open_settings

__all__ = ["CONTAINER_PATHS", "HOP_LIMIT_FIX", "IPV6_PROBE_ENDPOINT", "Report", "diagnose",
           "run_doctor"]

CONTAINER_PATHS = ContainerPaths()
"""Where the container check looks; tests replace it."""
IPV6_PROBE_ENDPOINT: str | None = None
"""The IPv6 endpoint to probe when IPv4 fails; ``None``: :data:`DEFAULT_ENDPOINT_IPV6`, and
only for the default IPv4 endpoint. Tests set it to an emulator on ``::1``."""
SLOW_FRACTION = 0.5
"""A median answer time above this fraction of the timeout is a problem: one slow answer away
from timing out."""


def _configuration(settings: Settings, environ: Mapping[str, str]) -> list[dict[str, str]]:
    cfg, src = settings.config, settings.sources
    config_file = environ.get("AWS_CONFIG_FILE") or os.path.join("~", ".aws", "config")
    rows = [
        ("endpoint", cfg.base_url, settings.endpoint_reason()),
        ("endpoint mode", cfg.endpoint_mode, src["endpoint_mode"]),
        ("timeout", f"{cfg.timeout:g} s", src["timeout"]),
        ("attempts", str(cfg.attempts), src["attempts"]),
        ("IMDSv1 fallback", "off" if cfg.v1_disabled else "on", src["v1_disabled"]),
        ("disabled", "true" if cfg.disabled else "false", src["disabled"]),
        ("config file", config_file,
         "variable AWS_CONFIG_FILE" if environ.get("AWS_CONFIG_FILE") else "default"),
        ("profile", environ.get("AWS_PROFILE") or "default",
         "variable AWS_PROFILE" if environ.get("AWS_PROFILE") else "default"),
    ]
    if settings.emulator:  # --emulator reads no config file, so no profile either
        rows[-2:] = [("config file", "not read", "--emulator"),
                     ("profile", "not read", "--emulator")]
    return [{"setting": s, "value": v, "source": w} for s, v, w in rows]


def _environment(report: Report, endpoint: str, environ: Mapping[str, str],
                 paths: ContainerPaths) -> list[str]:
    """Fill ``report.environment`` and its problems; return the container evidence."""
    url = URL(endpoint)
    found = proxies(environ)
    scheme_vars = ("http_proxy", "all_proxy") if url.scheme == "http" \
        else ("https_proxy", "all_proxy")
    used = {k: v for k, v in found.items() if k.lower() in scheme_vars}
    host = url.host or ""
    bypassed = proxy_bypassed(host, environ)
    evidence = container_evidence(paths, environ)
    report.environment = {
        "proxies": found, "no_proxy_covers_endpoint": bypassed,
        "AWS_EC2_METADATA_DISABLED": environ.get("AWS_EC2_METADATA_DISABLED"),
        "container": evidence,
    }
    if used and not bypassed:
        names = ", ".join(f"{k}={v}" for k, v in used.items())
        shown = f"[{host}]" if ":" in host else host
        report.problems.append(Finding(
            "proxy",
            f"a proxy is set in the environment ({names}) and NO_PROXY does not name {shown}: "
            "aioimds never uses proxies, but the AWS CLI, botocore and curl send IMDS requests "
            "through it, and a proxy cannot reach the link-local IMDS (or adds "
            "X-Forwarded-For, which IMDS refuses with 403)",
            f"export NO_PROXY={host},169.254.169.254,fd00:ec2::254${{NO_PROXY:+,$NO_PROXY}}"
            if host not in ("169.254.169.254", "fd00:ec2::254")
            else "export NO_PROXY=169.254.169.254,fd00:ec2::254${NO_PROXY:+,$NO_PROXY}"))
    return evidence


async def _probe_ipv6(report: Report, endpoint: str, timeout: float) -> bool:
    async with Prober(endpoint, timeout) as p:
        tcp = await p.tcp()
        if tcp.kind != "ok":
            report.probe("IPv6 endpoint", "fail", f"{endpoint}: {tcp.detail}", tcp.ms)
            return False
        put = await p.token_put()
    ok = put.token is not None
    report.probe("IPv6 endpoint", "ok" if ok else "fail",
                 f"{endpoint}: token PUT {put.detail}", tcp.ms + put.ms)
    return ok


async def _unreachable(report: Report, settings: Settings, tcp: Outcome,
                       ipv6_endpoint: str | None) -> None:
    """The TCP connect failed: try the IPv6 endpoint when that makes sense, name the problem."""
    cfg = settings.config
    default_v4 = settings.sources["endpoint"] == "default" and cfg.base_url == DEFAULT_ENDPOINT_IPV4
    target = ipv6_endpoint or (DEFAULT_ENDPOINT_IPV6 if default_v4 else None)
    if target is None:
        report.probe("IPv6 endpoint", "skip", f"the endpoint is set ({settings.endpoint_reason()})")
    elif await _probe_ipv6(report, target, cfg.timeout):
        report.problems.append(Finding(
            "ipv6-only", f"the IPv4 endpoint does not answer but the IPv6 one ({target}) does: "
            "an IPv6-only subnet",
            "use endpoint mode IPv6: export AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE=IPv6 (or "
            "ec2_metadata_service_endpoint_mode = IPv6 in the profile, or --endpoint-mode IPv6)"))
        return
    tcp_problem(report, settings, tcp)


async def _probe_tokens(report: Report, p: Prober, settings: Settings, evidence: list[str],
                        seen: dict[str, Outcome]) -> tuple[bool, str | None]:
    """Token PUT, GET without and with a token; (whether any GET is served, working token).

    Each probe's outcome goes into ``seen`` under its name. A 429 is throttling, not a verdict
    on tokens: :func:`answer_notes` reports it."""
    put = await p.token_put()
    seen["token PUT"] = put
    report.probe("token PUT", "ok" if put.token else "warn" if put.status == 429 else "fail",
                 put.detail, put.ms)
    v1 = seen["GET without token"] = await p.get(None)
    v1_words = {200: "answered 200: IMDSv1 allowed",
                401: "answered 401: IMDSv1 refused, tokens required"}
    report.probe("GET without token", "ok" if v1.status in v1_words
                 else "warn" if v1.status == 429 else "fail",
                 v1_words.get(v1.status or 0, v1.detail), v1.ms)
    with_token = await p.get(put.token) if put.token else None
    if with_token is None:
        report.probe("GET with token", "skip", "no token")
    else:
        seen["GET with token"] = with_token
        report.probe("GET with token", "ok" if with_token.kind == "ok"
                     else "warn" if with_token.status == 429 else "fail",
                     with_token.detail, with_token.ms)
    if put.status != 429:
        token_problems(report, settings, put, v1, with_token, evidence)
    token = put.token if with_token is not None and with_token.kind == "ok" else None
    # A 429 or 5xx is an answer too: the load probes then say how often it happens.
    served = token is not None or any(
        out is not None and out.status is not None and (out.status in (200, 429)
                                                        or out.status >= 500)
        for out in (v1, with_token))
    return served, token or put.token


async def _probe_load(report: Report, p: Prober, timeout: float, token: str | None,
                      seen: dict[str, Outcome]) -> tuple[float, dict[str, int]]:
    """Latency and a short burst; (the median answer time in ms, the burst's counts)."""
    median, worst, outs = await p.latency(token)
    for n, out in enumerate(outs, 1):
        seen[f"latency GET {n}"] = out
    answered = sum(out.kind == "ok" for out in outs)
    slow = median / 1000 > timeout * SLOW_FRACTION
    report.probe("latency", "warn" if slow or answered < len(outs) else "ok",
                 f"median {median:.2f} ms, max {worst:.2f} ms of {answered}/{LATENCY_SAMPLES} "
                 "GETs answered 200", median)
    if slow:
        report.problems.append(Finding(
            "slow", f"answers take {median:.0f} ms, more than half the {timeout:g} s timeout",
            f"raise the timeout: export AWS_METADATA_SERVICE_TIMEOUT="
            f"{max(2, round(timeout * 4))} (or --timeout)"))
    counts = await p.burst(token)
    throttled = counts["429"] + counts["none"]
    report.probe("throttle", "warn" if throttled or counts["5xx"] else "ok",
                 f"{THROTTLE_PROBE} GETs at once: {counts['200']} answered 200, "
                 f"{counts['429']} 429, {counts['5xx']} 5xx, {counts['none']} no answer", None)
    if throttled:
        report.notes.append(Finding(
            "throttled", f"{throttled} of {THROTTLE_PROBE} requests sent at once were throttled "
            "or dropped: the service limits bursts. aioimds paces itself; tools that do not may "
            "fail", THROTTLED_FIX))
    return median, counts


async def _probe(report: Report, settings: Settings, evidence: list[str],
                 ipv6_endpoint: str | None) -> None:
    cfg = settings.config
    seen: dict[str, Outcome] = {}
    burst: dict[str, int] = {}
    median = 0.0
    async with Prober(cfg.base_url, cfg.timeout, ttl=cfg.token_ttl) as p:
        tcp = await p.tcp()
        report.probe("TCP connect", "ok" if tcp.kind == "ok" else "fail", tcp.detail, tcp.ms)
        if tcp.kind != "ok":
            await _unreachable(report, settings, tcp, ipv6_endpoint)
            return
        report.probe("IPv6 endpoint", "skip", "IPv4 answers")
        served, token = await _probe_tokens(report, p, settings, evidence, seen)
        if served:
            median, burst = await _probe_load(report, p, cfg.timeout, token, seen)
        else:
            report.probe("latency", "skip", "no request is served")
            report.probe("throttle", "skip", "no request is served")
    answer_notes(report, seen, burst)
    if report.healthy and served:
        way = "IMDSv2" if token else "IMDSv1"
        report.summary = f"{cfg.base_url} answers {way} " + (
            f"in {median:.1f} ms" if median else "(throttled: no latency measured)")


async def diagnose(settings: Settings, environ: Mapping[str, str], *,
                   container_paths: ContainerPaths = CONTAINER_PATHS,
                   ipv6_endpoint: str | None = None) -> Report:
    """Diagnose reaching IMDS with ``settings``: the whole :class:`Report`."""
    report = Report(configuration=_configuration(settings, environ))
    evidence = _environment(report, settings.config.base_url, environ, container_paths)
    if settings.config.disabled:
        report.problems.append(Finding(
            "disabled", f"IMDS is disabled ({settings.sources['disabled']}=true): aioimds and "
            "the AWS SDKs send no request to it",
            "unset AWS_EC2_METADATA_DISABLED (or set it to false) where IMDS should be used"))
        report.probe("all", "skip", "IMDS is disabled: no request sent")
        return report
    await _probe(report, settings, evidence, ipv6_endpoint)
    return report


def render_text(report: Report) -> str:
    """The report for people."""
    lines = ["configuration"]
    width = max((len(r["setting"]) for r in report.configuration), default=0)
    vwidth = max((len(r["value"]) for r in report.configuration), default=0)
    lines += [f"  {r['setting']:<{width}}  {r['value']:<{vwidth}}  ({r['source']})"
              for r in report.configuration]
    env = report.environment
    lines.append("environment")
    found = env.get("proxies") or {}
    lines.append("  proxies: " + (", ".join(f"{k}={v}" for k, v in found.items()) + (
        " (NO_PROXY covers the endpoint)" if env.get("no_proxy_covers_endpoint") else "")
        if found else "none (aioimds never uses them)"))
    disabled = env.get("AWS_EC2_METADATA_DISABLED")
    lines.append(f"  AWS_EC2_METADATA_DISABLED: {disabled if disabled is not None else 'unset'}")
    evidence = env.get("container") or []
    lines.append("  container: " + ("yes (" + "; ".join(evidence) + ")" if evidence else "no"))
    lines.append("probes")
    for pr in report.probes:
        ms = f"  {pr['ms']:.1f} ms" if pr["ms"] is not None else ""
        lines.append(f"  {pr['verdict']:<4}  {pr['probe']:<18} {pr['detail']}{ms}")
    for title, items in (("problems", report.problems), ("notes", report.notes)):
        if items:
            lines.append(title)
            for n, item in enumerate(items, 1):
                lines.append(f"  {n}. {item.id}: {item.problem}")
                lines.append(f"     fix: {item.fix}")
    lines.append(f"verdict: {report.verdict}")
    return "\n".join(lines) + "\n"


async def run_doctor(args: argparse.Namespace, stdout: BinaryIO,
                     environ: Mapping[str, str] | None = None) -> int:
    """``aioimds doctor``: print the report; 0 when healthy, 1 otherwise."""
    env = os.environ if environ is None else environ
    try:
        async with open_settings(args, env) as settings:
            report = await diagnose(settings, env, container_paths=CONTAINER_PATHS,
                                    ipv6_endpoint=IPV6_PROBE_ENDPOINT)
    except IMDSConfigError as exc:
        report = Report()
        report.problems.append(Finding("configuration", str(exc),
                                       "correct or unset the variable or key named"))
    text = json.dumps(report.to_json(), indent=2) + "\n" if args.format == "json" \
        else render_text(report)
    stdout.write(text.encode())
    stdout.flush()
    return 0 if report.healthy else 1
