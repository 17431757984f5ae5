"""Sign the served instance identity document, so verification can be tested end to end.

``Emulator(sign_identity=True)`` makes a self-signed RSA-2048 certificate (one per process,
made on first use: key generation takes a noticeable fraction of a second) and serves
``/latest/dynamic/instance-identity/signature`` as IMDS does: the base64 RSA PKCS#1 v1.5
signature of the SHA-256 hash of the document's bytes, in lines of 76 characters. The
certificate (PEM) is ``emu.identity_certificate``: pass it where a real client would pass the
AWS RSA certificate of its Region. ``pkcs7`` and ``rsa2048`` are served as the snapshot has
them. Off by default, since the emulator otherwise serves its snapshot byte for byte.

Needs ``cryptography`` (``pip install 'aioimds[verify]'``).
"""

from __future__ import annotations

import base64
import functools
from collections.abc import MutableMapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from .. import catalogue
from ..errors import IMDSConfigError
from ..paths import ROOT
from ..snapshot import Record

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

__all__ = ["DOCUMENT", "SIGNATURE", "IdentitySigner"]

DOCUMENT = ROOT + catalogue.IDENTITY_DOCUMENT
SIGNATURE = ROOT + catalogue.IDENTITY_SIGNATURE
KEY_BITS = 2048
"""The RSA key size of AWS's certificate for the base64-encoded signature."""
CERTIFICATE_DAYS = 3650
"""Validity of the self-signed certificate: long enough never to expire during a test run."""
COMMON_NAME = "aioimds emulator identity (not AWS)"


class IdentitySigner:
    """Signs identity documents with this process's emulator key; see the module docstring.

    Raises (on creation): :class:`~aioimds.IMDSConfigError` naming
    ``pip install 'aioimds[verify]'`` when ``cryptography`` is missing.
    """

    def __init__(self) -> None:
        self._key, self.certificate = _key_and_certificate()

    def sign(self, responses: MutableMapping[str, Record]) -> None:
        """Set the signature leaf for the document in ``responses``, when one is served."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        document = responses.get(DOCUMENT)
        if document is None or document.status != 200:
            return
        raw = self._key.sign(document.body, padding.PKCS1v15(), hashes.SHA256())
        responses[SIGNATURE] = Record(base64.encodebytes(raw).rstrip(b"\n"))


@functools.lru_cache(maxsize=1)
def _key_and_certificate() -> tuple[RSAPrivateKey, str]:
    """A new RSA key and its self-signed certificate (PEM), made once per process."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID
    except ImportError as exc:
        raise IMDSConfigError("signing the identity document needs the 'cryptography' "
                              "package: pip install 'aioimds[verify]'") from exc
    key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, COMMON_NAME)])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=CERTIFICATE_DAYS))
            .sign(key, hashes.SHA256()))
    return key, cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
