"""Kalshi request signing: API key id + RSA-PSS (SHA-256) over timestamp, method and path.

Every REST request and the WebSocket handshake carry three headers: `KALSHI-ACCESS-KEY` (the key id),
`KALSHI-ACCESS-TIMESTAMP` (Unix time in **milliseconds**) and `KALSHI-ACCESS-SIGNATURE` (base64 of an RSA-PSS
signature, SHA-256, MGF1-SHA-256, salt length = digest length, over `timestamp + METHOD + path`). The path
includes `/trade-api/v2` (or `/trade-api/ws/v2`) and excludes the query string. The host does not enter the
signature, so demo and production keys sign the same way (keys are per environment).

The private key is read from `KALSHI_PRIVATE_KEY_PATH` (a PEM file) or `KALSHI_PRIVATE_KEY` (the PEM text); it is
never logged: `repr()` of a signer shows the key id and `***`, and a signer registers its key id and every line of
its PEM with the log's secret filter (telemetry/redact.py), so neither appears in any log line.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from arbees_core import settings as S
from arbees_core.config import REDACTED, ConfigError, Env
from arbees_core.telemetry.redact import register_secret

#: Kalshi's environments (`KALSHI_ENV`); keys are per environment.
WS_URLS: Final = {"prod": "wss://external-api-ws.kalshi.com/trade-api/ws/v2",
                  "demo": "wss://external-api-ws.demo.kalshi.co/trade-api/ws/v2"}
REST_URLS: Final = {"prod": "https://external-api.kalshi.com/trade-api/v2",
                    "demo": "https://external-api.demo.kalshi.co/trade-api/v2"}
ACCESS_KEY = "KALSHI-ACCESS-KEY"
ACCESS_TIMESTAMP = "KALSHI-ACCESS-TIMESTAMP"
ACCESS_SIGNATURE = "KALSHI-ACCESS-SIGNATURE"


def kalshi_env(env: Env) -> str:
    """`KALSHI_ENV` (prod | demo): which hosts, and which keys, are used."""
    return env.get(S.KALSHI_ENV)


def pss_padding() -> padding.PSS:
    """The padding Kalshi verifies: MGF1 with SHA-256, salt as long as the digest (32 bytes)."""
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)


def signed_path(url_or_path: str) -> str:
    """The part of a URL that is signed: its path, without query string or fragment."""
    path = urlsplit(url_or_path).path if "://" in url_or_path else url_or_path.split("?", 1)[0].split("#", 1)[0]
    return path or "/"


def load_private_key(pem: bytes) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM bytes; a clear ConfigError (never the key text) when it is not one."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as e:
        raise ConfigError("the Kalshi private key is not an unencrypted PEM private key "
                          f"({type(e).__name__})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError("the Kalshi private key is not an RSA key")
    return key


@dataclass(frozen=True)
class KalshiSigner:
    """Signs Kalshi requests with one API key. `key_id`: KALSHI_API_KEY_ID; the key itself is never shown."""

    key_id: str
    private_key: rsa.RSAPrivateKey = field(repr=False, compare=False)

    def __repr__(self) -> str:
        return f"KalshiSigner(key_id={self.key_id!r}, private_key={REDACTED!r})"

    @classmethod
    def from_pem(cls, key_id: str, pem: bytes | str) -> "KalshiSigner":
        """A signer from the key id and the PEM text; both are registered as secrets for the log filter."""
        text = pem if isinstance(pem, str) else pem.decode("utf-8", "replace")
        register_secret(key_id)
        register_secret(text)
        return cls(key_id, load_private_key(text.encode()))

    @classmethod
    def from_env(cls, env: Env) -> "KalshiSigner":
        """KALSHI_API_KEY_ID plus KALSHI_PRIVATE_KEY_PATH (a file) or KALSHI_PRIVATE_KEY (PEM text, `\\n` allowed)."""
        key_id = env.get(S.KALSHI_API_KEY_ID)
        if not key_id:
            raise ConfigError("KALSHI_API_KEY_ID is not set: the Kalshi connection is signed even for market data "
                              "(create an API key at kalshi.com -> Account -> API keys, per environment)")
        path = env.get(S.KALSHI_PRIVATE_KEY_PATH)
        if path:
            try:
                pem = Path(path).expanduser().read_bytes()
            except OSError as e:
                raise ConfigError(f"KALSHI_PRIVATE_KEY_PATH={path!r}: cannot read it ({e.strerror})") from None
        else:
            text = env.get(S.KALSHI_PRIVATE_KEY)
            if not text:
                raise ConfigError("neither KALSHI_PRIVATE_KEY_PATH nor KALSHI_PRIVATE_KEY is set: the Kalshi "
                                  "connection needs the API key's RSA private key (PEM)")
            pem = text.replace("\\n", "\n").encode()
        return cls.from_pem(key_id, pem)

    def sign(self, timestamp_ms: int, method: str, path: str) -> str:
        """base64 RSA-PSS signature of `timestamp_ms + METHOD + path` (path without query)."""
        message = f"{timestamp_ms}{method.upper()}{signed_path(path)}".encode()
        return base64.b64encode(self.private_key.sign(message, pss_padding(), hashes.SHA256())).decode()

    def headers(self, method: str, path: str, timestamp_ms: int | None = None) -> dict[str, str]:
        """The three auth headers for one request (timestamp: now, in milliseconds)."""
        ts = int(time.time() * 1000) if timestamp_ms is None else timestamp_ms
        return {ACCESS_KEY: self.key_id, ACCESS_TIMESTAMP: str(ts), ACCESS_SIGNATURE: self.sign(ts, method, path)}


def verify(public_key: rsa.RSAPublicKey, headers: dict[str, str], method: str, path: str) -> bool:
    """Whether `headers` carry a valid signature of this request (what the venue checks; used by test servers)."""
    from cryptography.exceptions import InvalidSignature

    try:
        message = f"{headers[ACCESS_TIMESTAMP]}{method.upper()}{signed_path(path)}".encode()
        public_key.verify(base64.b64decode(headers[ACCESS_SIGNATURE]), message, pss_padding(), hashes.SHA256())
        return True
    except (KeyError, ValueError, InvalidSignature):
        return False
