"""Registry references (``host[:port]/repo:tag``, ``oci://`` allowed) and the oras client stackc talks through.

Why our own parse before oras sees it: a reference names where credentials go and whether plain
HTTP is acceptable, so it must name its host explicitly (no Docker Hub default) and be well formed.
Plain HTTP is used only for loopback hosts or with ``--insecure``; credentials come only from the
Docker config and its credential helpers (oras-py reads them), never from the command line.
"""
from __future__ import annotations

import functools
import ipaddress
import os
import re
from dataclasses import dataclass

from ..errors import MissingDependencyError, RegistryError, UsageError

TIMEOUT = (10, 60)  # connect, read (seconds): a registry that stops answering must not hang a device forever
_HOST = re.compile(r"^(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(?::\d{1,5})?$")
_REPO = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class Reference:
    registry: str  # host[:port], as written
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def host(self) -> str:
        if self.registry.startswith("["):
            return self.registry[1:self.registry.index("]")]
        return self.registry.rsplit(":", 1)[0] if ":" in self.registry else self.registry

    @property
    def target(self) -> str:
        """What oras-py parses: the reference with its host, by digest when one was given."""
        return f"{self.registry}/{self.repository}" + (f"@{self.digest}" if self.digest else f":{self.tag}")

    def __str__(self) -> str:
        return self.target


def parse_reference(text: str) -> Reference:
    """``[oci://]host[:port]/repo[/more]:tag`` or ``...@sha256:<hex>``; anything else is a usage error (exit 2)."""
    raw = text.removeprefix("oci://")
    usage = UsageError(f"registry reference '{text[:200]}' is not HOST[:PORT]/REPOSITORY:TAG "
                       "(e.g. localhost:5000/vision/resnet:1.2.0-edge-mobile)")
    host, sep, rest = raw.partition("/")
    if not sep or not _HOST.match(host) or not ("." in host or ":" in host or host in LOOPBACK_NAMES):
        raise usage
    digest = tag = None
    if "@" in rest:
        rest, _, digest = rest.partition("@")
        if not _DIGEST.match(digest):
            raise usage
    else:
        repo_part, colon, tag = rest.rpartition(":")
        if not colon or not _TAG.match(tag):
            raise usage
        rest = repo_part
    if not _REPO.match(rest) or len(rest) > 255:
        raise usage
    return Reference(host, rest, tag, digest)


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def connect(ref: Reference, insecure: bool = False):
    """An oras-py client for ``ref``'s registry: HTTPS unless loopback or ``insecure``, Docker-config credentials,
    a timeout on every request and no silent retries (oras-py retries a dead registry for two minutes)."""
    try:
        import oras.provider
    except ImportError:
        raise MissingDependencyError("stackc push/pull need oras-py", hint="pip install 'stackc[registry]'") from None

    class Client(oras.provider.Registry):
        def do_request(self, *args, **kwargs):
            return oras.provider.Registry.do_request.__wrapped__(self, *args, **kwargs)

    client = Client(hostname=ref.registry, insecure=insecure or is_loopback(ref.host), auth_backend="token")
    client.session.request = functools.partial(client.session.request, timeout=TIMEOUT)
    client.session.trust_env = False  # no ~/.netrc credentials or proxy settings: the Docker config only
    container = client.get_container(ref.target)
    docker_config = os.environ.get("DOCKER_CONFIG")  # docker's own override of ~/.docker
    client.auth.load_configs(container, [os.path.join(docker_config, "config.json")] if docker_config else None)
    return client, container


def registry_error(ref: Reference, e: Exception) -> RegistryError:
    """One line for a transport-level failure (connection refused, TLS, timeout, garbage instead of HTTP)."""
    import requests

    if isinstance(e, requests.exceptions.SSLError):
        why = "TLS failed (give --insecure only for a registry you trust on plain HTTP)"
    elif isinstance(e, requests.exceptions.Timeout):
        why = "timed out"
    elif isinstance(e, requests.exceptions.ConnectionError):
        why = "connection failed or the answer was not HTTP"
    elif isinstance(e, ValueError) and "authentication" in str(e):
        why = "asks for credentials stackc cannot give (log in with 'docker login' or set a credential helper)"
    else:
        why = f"{type(e).__name__}: {' '.join(str(e).split())[:160]}"
    return RegistryError(f"registry {ref.registry}: {why}")


def check_status(ref: Reference, response, what: str, ok=(200,)) -> None:
    if response.status_code in ok:
        return
    if response.status_code in (401, 403):
        raise RegistryError(f"registry {ref.registry}: {what}: access denied (HTTP {response.status_code}); "
                            "credentials come from the Docker config ('docker login')")
    raise RegistryError(f"registry {ref.registry}: {what}: HTTP {response.status_code}")
