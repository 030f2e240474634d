"""A software authenticator for unit tests: soft-webauthn's device, speaking
the browser's JSON, able to verify the user (soft-webauthn never sets the UV
flag) and to claim a backup-eligible (syncable) key."""

from __future__ import annotations

import json
from base64 import urlsafe_b64decode
from base64 import urlsafe_b64encode
from hashlib import sha256
from struct import pack

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor
from fido2.cose import ES256
from soft_webauthn import SoftWebauthnDevice

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40


def b64(data: bytes) -> str:
    return urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Authenticator(SoftWebauthnDevice):  # type: ignore[misc]
    def __init__(self, *, verifies_user: bool = True, syncable: bool = False) -> None:
        super().__init__()
        self.verifies_user = verifies_user
        self.syncable = syncable

    def _flags(self, *extra: int) -> bytes:
        flags = UP | (UV if self.verifies_user else 0) | (BE | BS if self.syncable else 0)
        for bit in extra:
            flags |= bit
        return bytes([flags])

    def create_json(self, options_json: str, origin: str) -> str:
        """``navigator.credentials.create()`` for the options the server sent."""
        options = json.loads(options_json)
        self.cred_init(options["rp"]["id"], unb64(options["user"]["id"]))
        client_data = json.dumps(
            {"type": "webauthn.create", "challenge": options["challenge"], "origin": origin}
        ).encode()
        public_key = cbor.encode(ES256.from_cryptography_key(self.private_key.public_key()))
        auth_data = (
            sha256(self.rp_id.encode()).digest()
            + self._flags(AT)
            + pack(">I", self.sign_count)
            + self.aaguid
            + pack(">H", len(self.credential_id))
            + self.credential_id
            + public_key
        )
        attestation = cbor.encode({"authData": auth_data, "fmt": "none", "attStmt": {}})
        return json.dumps(
            {
                "id": b64(self.credential_id),
                "rawId": b64(self.credential_id),
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64(client_data),
                    "attestationObject": b64(attestation),
                    "transports": ["internal"],
                },
            }
        )

    def get_json(self, options_json: str, origin: str, *, rp_id: str | None = None) -> str:
        """``navigator.credentials.get()``: signs with the next sign count."""
        options = json.loads(options_json)
        self.sign_count += 1
        client_data = json.dumps(
            {"type": "webauthn.get", "challenge": options["challenge"], "origin": origin}
        ).encode()
        auth_data = (
            sha256((rp_id or self.rp_id).encode()).digest()
            + self._flags()
            + pack(">I", self.sign_count)
        )
        signature = self.private_key.sign(
            auth_data + sha256(client_data).digest(), ec.ECDSA(hashes.SHA256())
        )
        return json.dumps(
            {
                "id": b64(self.credential_id),
                "rawId": b64(self.credential_id),
                "type": "public-key",
                "response": {
                    "clientDataJSON": b64(client_data),
                    "authenticatorData": b64(auth_data),
                    "signature": b64(signature),
                    "userHandle": b64(self.user_handle),
                },
            }
        )
