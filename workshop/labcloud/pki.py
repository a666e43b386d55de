"""Keys, certificates and passwords a cohort needs, generated locally.

Everything here returns bytes or strings; the caller decides where they are stored
(the cohort state directory, 0600) and where they are copied (into a container).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from dataclasses import dataclass

import bcrypt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 365
CERT_DAYS = 180


@dataclass(frozen=True)
class KeyPair:
    """PEM (or OpenSSH) encoded private key and its public counterpart."""

    private: bytes
    public: bytes


def ssh_keypair(comment: str) -> KeyPair:
    """A new ed25519 key pair in OpenSSH format (``id_ed25519`` / ``id_ed25519.pub``)."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    return KeyPair(private, public + f" {comment}\n".encode())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Docker for ML workshop"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def certificate_authority(cohort: str) -> KeyPair:
    """A self-signed CA for one cohort: ``public`` is the CA certificate (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    name = _name(f"{cohort} classroom CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def server_certificate(ca: KeyPair, dns_names: list[str], ip_addresses: list[str]) -> KeyPair:
    """A TLS server certificate signed by ``ca`` for the given names and addresses."""
    ca_key = serialization.load_pem_private_key(ca.private, password=None)
    ca_cert = x509.load_pem_x509_certificate(ca.public)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns_names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ip_addresses]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(dns_names[0]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CERT_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return KeyPair(_pem(key), cert.public_bytes(serialization.Encoding.PEM))


def certificate_covers(cert_pem: bytes, ip_address: str) -> bool:
    """Whether a certificate names ``ip_address`` and is valid for at least 30 more days."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    remaining = cert.not_valid_after_utc - dt.datetime.now(dt.UTC)
    return ip_address in ips and remaining > dt.timedelta(days=30)


def password() -> str:
    """A random password that is safe in URLs, shells and YAML."""
    return secrets.token_urlsafe(24)


def htpasswd_line(username: str, secret: str) -> str:
    """One htpasswd entry; the distribution registry accepts bcrypt only."""
    hashed = bcrypt.hashpw(secret.encode(), bcrypt.gensalt(rounds=10)).decode()
    return f"{username}:{hashed}\n"
