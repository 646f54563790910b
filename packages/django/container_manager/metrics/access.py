"""Who may read the metrics: the one rule the endpoint applies (``METRICS_TOKEN``, ``METRICS_ALLOWED_NETWORKS``)."""

from __future__ import annotations

import hmac
import ipaddress

from django.http import HttpRequest

from container_manager.conf import AppSettings

BEARER = "bearer"


def refusal(request: HttpRequest, settings: AppSettings) -> str | None:
    """Return why ``request`` may not read the metrics, or None when it may.

    Each setting that is set must be met. The address is the one the request came from
    (``REMOTE_ADDR``): behind a proxy that is the proxy's, so there the token is the check to use.
    The reason never quotes what the request sent.
    """
    if settings.METRICS_ALLOWED_NETWORKS is not None and not address_allowed(
        request.META.get("REMOTE_ADDR", ""), settings.METRICS_ALLOWED_NETWORKS
    ):
        return "This address may not read the metrics (METRICS_ALLOWED_NETWORKS)."
    if settings.METRICS_TOKEN is not None and not token_matches(
        request.headers.get("Authorization", ""), settings.METRICS_TOKEN
    ):
        return "The metrics need the bearer token (METRICS_TOKEN) in an Authorization header."
    return None


def token_matches(authorization: str, token: str) -> bool:
    """Say whether an ``Authorization`` header value is ``Bearer <token>``, in constant time."""
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != BEARER:
        return False
    return hmac.compare_digest(given.strip().encode(), token.encode())


def address_allowed(address: str, networks: tuple[str, ...]) -> bool:
    """Say whether ``address`` is in one of ``networks``; an address that does not parse is not."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:10.0.0.1 is 10.0.0.1 on a dual-stack socket
    return any(ip in ipaddress.ip_network(network) for network in networks)
