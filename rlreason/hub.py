"""Is the Hugging Face Hub reachable? And offline mode for one call, decided at run time.

`huggingface_hub` and `datasets` read `HF_HUB_OFFLINE` once, at import. Without it, a machine that
cannot reach the Hub pays every request's five retries with back-off (about 25 s) before the error.
`hub_reachable()` instead opens one TCP connection to the endpoint with a short timeout (once per
process and endpoint), and `hub_offline()` switches both libraries to offline mode for one call, so
cached files still load and missing ones fail at once.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from urllib.parse import urlparse

PROBE_TIMEOUT_S = 3.0
_PROXY_VARS = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")
_reachable: dict[str, bool] = {}  # endpoint -> probe result, once per process


def _endpoint() -> str:
    return os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")


def hub_reachable(timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether one TCP connection to the Hub endpoint opens within `timeout` (cached per endpoint).

    Behind a proxy a direct connection says nothing, so the answer is then True and `datasets`
    decides as usual."""
    endpoint = _endpoint()
    if any(os.environ.get(v) for v in _PROXY_VARS):
        return True
    if endpoint not in _reachable:
        url = urlparse(endpoint)
        port = url.port or (443 if url.scheme == "https" else 80)
        try:
            socket.create_connection((url.hostname or "", port), timeout=timeout).close()
            _reachable[endpoint] = True
        except OSError:
            _reachable[endpoint] = False
    return _reachable[endpoint]


def offline_mode() -> bool:
    """Offline mode as `huggingface_hub` and `datasets` read it (set from HF_HUB_OFFLINE at import)."""
    import datasets
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE or datasets.config.HF_HUB_OFFLINE)


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """Offline mode for the duration of one load: both libraries read the flag from module constants
    (captured from the environment at import), so setting the environment variable now does nothing."""
    import datasets
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = datasets.config.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE, datasets.config.HF_HUB_OFFLINE = saved
