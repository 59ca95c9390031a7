"""Secrets kept out of sight: the key as a :class:`Secret`, RPC URLs redacted to scheme, host and
port wherever they appear, and children started without the parent's secrets.

A leaf module (standard library only): configuration, the chain code and the simulator all
use it, and it uses none of them.
"""

from __future__ import annotations

import contextlib
import os
import re
from typing import Iterator, Mapping
from urllib.parse import urlsplit


class Secret:
    """A string that never shows itself in repr, str or logs."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def get_secret_value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__


_URL_RE = re.compile(r"\b([a-zA-Z][a-zA-Z0-9+.-]*://)([^/\s:@]+(?::[^/\s@]*)?@)?(\[[0-9a-fA-F:.]+\]|[^/\s?#:\[\]]+)(:\d+)?([^\s'\"]*)")


RPC_FIX = "check HEDGER_RPC_URL (host, port, API key), or start the node (a local one: `anvil`)"


def redact_url(url: str) -> str:
    """Scheme, host and port only: hosted RPC URLs carry API keys in the user info, path or
    query, never in the host or port (which say which node is meant: keep them)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "<unparseable URL>"
    if not parts.scheme:
        return "<URL>"
    host = parts.hostname or ""
    if ":" in host:                      # IPv6 literal
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


_SECRET_FRAGMENTS: set[str] = set()


def register_rpc_url(url: str) -> None:
    """Remember the parts of an RPC URL beyond scheme and host (path, query, user info), which
    hosted RPCs use for API keys, so that :func:`redact_urls` removes them wherever they appear
    (library errors quote a bare path, not only the full URL)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    for frag in (parts.path, parts.query):
        if frag and len(frag.strip("/")) >= 6:
            _SECRET_FRAGMENTS.add(frag)
    for frag in (parts.username, parts.password):
        if frag and len(frag) >= 3:
            _SECRET_FRAGMENTS.add(frag)


def redact_urls(text: str) -> str:
    """Replace every URL in ``text`` by its scheme, host and port, and blank known secret URL parts."""
    def short(m: re.Match[str]) -> str:
        # punctuation that ends the sentence around the URL is not part of it: kept
        trail = re.search(r"[.,:;!)\]`>]*$", m.group(5)).group(0)  # type: ignore[union-attr]
        return f"{m.group(1)}{m.group(3)}{m.group(4) or ''}{trail}"

    text = _URL_RE.sub(short, text)
    for frag in sorted(_SECRET_FRAGMENTS, key=len, reverse=True):
        text = text.replace(frag, "***")
    return text


# ---------------------------------------------------------------- child processes

_SECRET_NAME_RE = re.compile(r"PRIVATE_KEY|PASSPHRASE|PASSWORD|SECRET|MNEMONIC|API_KEY|AUTH_TOKEN|ACCESS_TOKEN"
                             r"|^HEDGER_ALERT_WEBHOOK$", re.IGNORECASE)


def _url_with_credentials(value: str) -> bool:
    """A URL whose user info, path or query may carry an API key (``https://host/v2/KEY``)."""
    for word in value.split():
        if "://" not in word:
            continue
        try:
            parts = urlsplit(word)
        except ValueError:
            return True
        if parts.scheme.lower() in ("http", "https", "ws", "wss") and (
                parts.username or parts.password or parts.path.strip("/") or parts.query):
            return True
    return False


def is_secret_env(name: str, value: str) -> bool:
    """Whether a child process must not inherit this variable: a key, a passphrase, a secret, the
    webhook URL, or an RPC or other URL with credentials."""
    return bool(_SECRET_NAME_RE.search(name)) or _url_with_credentials(value)


def child_env(base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
    """The environment for a child process (``ape compile``, anvil, pool workers, any subprocess):
    ``base`` (default: this process's, which ``.env`` has filled) without secrets, plus ``extra``
    (what the child needs, given explicitly). ``load_dotenv`` put the key into the environment;
    no child needs it, and a child's environment is readable by others (``/proc/PID/environ``, a
    crash report)."""
    base = os.environ if base is None else base
    return {**{k: v for k, v in base.items() if not is_secret_env(k, v)}, **extra}


@contextlib.contextmanager
def scrubbed_environ() -> Iterator[None]:
    """Within the block, this process's environment holds no secrets (for a library that starts a
    child itself, such as ape starting anvil); restored afterwards."""
    removed = {k: v for k, v in os.environ.items() if is_secret_env(k, v)}
    for k in removed:
        del os.environ[k]
    try:
        yield
    finally:
        for k, v in removed.items():
            os.environ.setdefault(k, v)
