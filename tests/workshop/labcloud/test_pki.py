"""Keys and certificates the lab cloud generates, checked with the crypto libraries."""

from __future__ import annotations

import bcrypt
import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from workshop.labcloud import pki


def test_server_certificate_chains_to_the_cohort_ca_and_names_the_registry():
    ca = pki.certificate_authority("nov-2026")
    server = pki.server_certificate(ca, ["registry", "localhost"], ["10.213.0.2"])
    ca_cert = x509.load_pem_x509_certificate(ca.public)
    cert = x509.load_pem_x509_certificate(server.public)
    cert.verify_directly_issued_by(ca_cert)
    assert ca_cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["registry", "localhost"]
    assert pki.certificate_covers(server.public, "10.213.0.2")
    assert not pki.certificate_covers(server.public, "10.213.0.3")


def test_a_certificate_from_another_cohorts_ca_does_not_verify():
    ours, theirs = pki.certificate_authority("lab"), pki.certificate_authority("lab")
    cert = x509.load_pem_x509_certificate(pki.server_certificate(theirs, ["r"], []).public)
    with pytest.raises(InvalidSignature):
        cert.verify_directly_issued_by(x509.load_pem_x509_certificate(ours.public))


def test_ssh_keypair_is_openssh_ed25519():
    keys = pki.ssh_keypair("workshop-lab")
    assert keys.public.startswith(b"ssh-ed25519 ")
    assert keys.public.rstrip().endswith(b"workshop-lab")
    assert serialization.load_ssh_private_key(keys.private, password=None)


def test_htpasswd_line_is_bcrypt_of_the_password():
    secret = pki.password()
    user, hashed = pki.htpasswd_line("instructor", secret).strip().split(":", 1)
    assert user == "instructor"
    assert bcrypt.checkpw(secret.encode(), hashed.encode())
    assert not bcrypt.checkpw(b"wrong", hashed.encode())


def test_ca_key_is_ec_p256():
    key = serialization.load_pem_private_key(pki.certificate_authority("c").private, None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"
