"""Instance identity document verification, against the emulator's signed document."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import fixture_params
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from aioimds import IMDSClient, IMDSIdentityError, Snapshot, verify_identity_document
from aioimds.emulator import Emulator, default_snapshot

DOCUMENT = "/latest/dynamic/instance-identity/document"
SIGNATURE = "/latest/dynamic/instance-identity/signature"


def signed(emu: Emulator) -> tuple[bytes, str, str]:
    """The document, signature and certificate the running emulator serves."""
    snap, cert = emu.snapshot, emu.identity_certificate
    assert cert is not None
    return snap[DOCUMENT].body, snap[SIGNATURE].body.decode("ascii"), cert


async def test_the_signed_document_verifies_and_parses() -> None:
    async with Emulator(sign_identity=True) as emu, IMDSClient(endpoint=emu.url) as imds:
        assert emu.identity_certificate is not None
        verified = await imds.verified_identity_document(emu.identity_certificate)
        assert verified == await imds.identity_document()
        body, signature, cert = signed(emu)
    verify_identity_document(body, signature, cert)
    verify_identity_document(body.decode("utf-8"), signature, cert)
    assert "\n" in signature  # base64 in lines, as IMDS serves it


@pytest.mark.parametrize("path", fixture_params())
async def test_every_fixture_document_verifies_once_signed(path: Path) -> None:
    snap = Snapshot.load(path)
    async with Emulator(snap, sign_identity=True) as emu, IMDSClient(endpoint=emu.url) as imds:
        cert = emu.identity_certificate or ""
        if DOCUMENT not in snap:
            assert SIGNATURE not in emu.snapshot  # nothing to sign, nothing added
            with pytest.raises(IMDSIdentityError, match="404"):
                await imds.verified_identity_document(cert)
            return
        assert await imds.verified_identity_document(cert) == await imds.identity_document()


@pytest.mark.parametrize("tamper", [
    lambda doc: doc.replace(b"111122223333", b"999999999999"),
    lambda doc: doc + b"\n",
    lambda doc: doc.replace(b" : ", b": "),  # re-serialised JSON is not the signed bytes
], ids=["account", "trailing-newline", "reformatted"])
async def test_a_tampered_document_fails(tamper: Callable[[bytes], bytes]) -> None:
    async with Emulator(sign_identity=True) as emu:
        body, signature, cert = signed(emu)
    with pytest.raises(IMDSIdentityError, match="does not match its signature"):
        verify_identity_document(tamper(body), signature, cert)


async def test_a_document_set_while_running_is_signed_again() -> None:
    async with Emulator(sign_identity=True) as emu, IMDSClient(endpoint=emu.url) as imds:
        old = emu.snapshot[SIGNATURE]
        emu.set_leaf(DOCUMENT, emu.snapshot[DOCUMENT].body.replace(b"t3.micro", b"m7g.large"))
        assert emu.snapshot[SIGNATURE] != old
        doc = await imds.verified_identity_document(emu.identity_certificate or "")
    assert doc.instance_type == "m7g.large"


async def test_a_forged_signature_leaf_fails_through_the_client() -> None:
    async with Emulator(sign_identity=True) as emu, IMDSClient(endpoint=emu.url) as imds:
        emu.set_leaf(SIGNATURE, "AAAA" * 86 + "AA==")
        with pytest.raises(IMDSIdentityError, match="does not match"):
            await imds.verified_identity_document(emu.identity_certificate or "")
        emu.remove(SIGNATURE)
        with pytest.raises(IMDSIdentityError) as info:
            await imds.verified_identity_document(emu.identity_certificate or "")
    assert (info.value.path, info.value.status) == (SIGNATURE, 404)


async def test_signing_is_off_by_default_so_snapshots_are_served_as_they_are() -> None:
    async with Emulator() as emu:
        assert emu.identity_certificate is None
        assert emu.snapshot == default_snapshot()


def _ec_certificate() -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ec")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


@pytest.mark.parametrize(("signature", "certificate", "message"), [
    ("not base64!", None, "not base64"),
    ("AAAA", "-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n", "not a PEM"),
    ("AAAA", "é", "not a PEM"),
    ("AAAA", "ec", "not RSA"),
], ids=["signature", "certificate", "non-ascii-certificate", "ec-key"])
async def test_malformed_inputs_are_identity_errors(
    signature: str, certificate: str | None, message: str
) -> None:
    async with Emulator(sign_identity=True) as emu:
        body, _, cert = signed(emu)
    cert = _ec_certificate() if certificate == "ec" else certificate or cert
    with pytest.raises(IMDSIdentityError, match=message):
        verify_identity_document(body, signature, cert)


def test_missing_cryptography_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cryptography", None)
    with pytest.raises(IMDSIdentityError, match=r"pip install 'aioimds\[verify\]'"):
        verify_identity_document(b"{}", "AAAA", "cert")
