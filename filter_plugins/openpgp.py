"""``openpgp_fingerprints``: the fingerprints of the keys in an OpenPGP public key block.

The docker and nvidia_toolkit roles check the signing key they are about to trust for
an apt repository against the vendor's published fingerprint, on the controller, before
the key reaches a VM: a mirror, proxy or typo that serves another key stops the run.
Standard library only (RFC 4880 / RFC 9580 packet framing; v4 and v6 fingerprints).
"""

from __future__ import annotations

import base64
import binascii
import hashlib

from ansible.errors import AnsibleFilterError

PUBLIC_KEY_TAGS = (6, 14)  # primary key, subkey


def _dearmor(text: str) -> bytes:
    lines = text.strip().splitlines()
    if not lines or not lines[0].startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----"):
        raise AnsibleFilterError("not an ASCII-armored OpenPGP public key block")
    body: list[str] = []
    in_body = False
    for line in lines[1:]:
        if line.startswith("-----END"):
            break
        if not in_body:
            in_body = line.strip() == ""  # headers end at the first empty line
            if not in_body and ":" not in line:  # no headers at all
                in_body = True
                body.append(line.strip())
            continue
        if line.startswith("="):  # the CRC24 checksum line
            break
        body.append(line.strip())
    try:
        return base64.b64decode("".join(body), validate=True)
    except binascii.Error as exc:
        raise AnsibleFilterError(f"the key block is not valid base64: {exc}") from None


def _packets(data: bytes) -> list[tuple[int, bytes]]:
    found, at = [], 0
    while at < len(data):
        header = data[at]
        if not header & 0x80:
            raise AnsibleFilterError(f"not an OpenPGP packet at byte {at}")
        if header & 0x40:  # new format
            tag, at = header & 0x3F, at + 1
            first = data[at]
            if first < 192:
                length, at = first, at + 1
            elif first < 224:
                length, at = ((first - 192) << 8) + data[at + 1] + 192, at + 2
            elif first == 255:
                length, at = int.from_bytes(data[at + 1 : at + 5], "big"), at + 5
            else:
                raise AnsibleFilterError("partial-length packets do not occur in key blocks")
        else:  # old format
            tag, kind, at = (header >> 2) & 0x0F, header & 0x03, at + 1
            if kind == 3:
                length = len(data) - at
            else:
                size = (1, 2, 4)[kind]
                length, at = int.from_bytes(data[at : at + size], "big"), at + size
        found.append((tag, data[at : at + length]))
        at += length
    return found


def openpgp_fingerprints(text: str) -> list[str]:
    """Upper-case hex fingerprints of the primary key and subkeys in ``text``."""
    fingerprints = []
    for tag, body in _packets(_dearmor(str(text))):
        if tag not in PUBLIC_KEY_TAGS or not body:
            continue
        if body[0] == 4:
            digest = hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body)  # noqa: S324 (the v4 fingerprint is defined as SHA-1)
        elif body[0] == 6:
            digest = hashlib.sha256(b"\x9b" + len(body).to_bytes(4, "big") + body)
        else:
            continue
        fingerprints.append(digest.hexdigest().upper())
    if not fingerprints:
        raise AnsibleFilterError("the key block holds no v4 or v6 public key")
    return fingerprints


def normal_fingerprint(value: str) -> str:
    """``9DC8 5822 ...`` as published, without spaces, upper case."""
    return "".join(str(value).split()).upper()


class FilterModule:
    def filters(self) -> dict:
        return {
            "openpgp_fingerprints": openpgp_fingerprints,
            "normal_fingerprint": normal_fingerprint,
        }
