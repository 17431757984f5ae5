"""Verify the instance identity document against its base64-encoded signature.

``dynamic/instance-identity/signature`` holds the base64 RSA signature (PKCS#1 v1.5) of the
SHA-256 hash of the document's bytes exactly as served; it verifies with the AWS RSA public
certificate of the instance's Region (EC2 user guide, "Verify the instance identity document",
option 2: https://docs.aws.amazon.com/AWSEC2/latest/UserGuide/verify-iid.html). The other two
signatures are PKCS7 envelopes (``pkcs7``: DSA/SHA-1, ``rsa2048``: RSA-2048/SHA-256) and are
not checked here.

Needs the optional ``cryptography`` package (``pip install 'aioimds[verify]'``), imported only
when a verification runs.
"""

from __future__ import annotations

import base64
import binascii

from ..errors import IMDSIdentityError

__all__ = ["verify_identity_document"]


def verify_identity_document(document: str | bytes, signature: str, certificate: str) -> None:
    """Check that ``signature`` signs ``document``, with the key of ``certificate``.

    Args:
        document: the document exactly as served (str is UTF-8 encoded); re-serialised JSON
            does not verify.
        signature: the body of ``dynamic/instance-identity/signature`` (base64; line breaks
            are ignored).
        certificate: the AWS RSA public certificate for the Region, PEM
            (``-----BEGIN CERTIFICATE-----``).

    Returns: ``None`` when the signature is valid.
    Raises: :class:`~aioimds.IMDSIdentityError` when it is not, when ``signature`` is not
    base64 or ``certificate`` not an RSA PEM certificate, or when ``cryptography`` is missing.
    """
    try:
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding, rsa
    except ImportError as exc:
        raise IMDSIdentityError("verifying the instance identity document needs the "
                                "'cryptography' package: pip install 'aioimds[verify]'") from exc
    data = document.encode("utf-8") if isinstance(document, str) else document
    try:
        raw = base64.b64decode("".join(signature.split()), validate=True)
    except binascii.Error as exc:
        raise IMDSIdentityError("the identity document signature is not base64") from exc
    try:
        key = x509.load_pem_x509_certificate(certificate.encode("ascii")).public_key()
    except (ValueError, UnicodeEncodeError) as exc:
        raise IMDSIdentityError("the certificate is not a PEM X.509 certificate") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise IMDSIdentityError("the certificate's key is not RSA: use the AWS RSA "
                                "certificate for the base64-encoded signature")
    try:
        key.verify(raw, data, padding.PKCS1v15(), hashes.SHA256())
    except InvalidSignature as exc:
        raise IMDSIdentityError("the instance identity document does not match its signature: "
                                "it was altered, or the certificate is not its Region's") from exc
