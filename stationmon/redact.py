"""URLs as they may appear in logs and messages: never with credentials, a query or a fragment.

Webhook URLs often carry the receiver's key in the query (WeChat Work robots, Slack) and any URL may
carry user:password@; one rule for every log line and error message.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

__all__ = ["redact_url"]


def redact_url(url: str) -> str:
    """The URL with scheme, host, port and path only: no user:password@, query or fragment."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<malformed URL>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
