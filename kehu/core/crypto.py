"""Personal data at rest (PIPL, MLPS level 3): authenticated encryption, blind indexes and masking.

Values are stored as ``v1.<key id>.<cipher>.<base64(nonce + ciphertext + tag)>``:

* the cipher is AES-256-GCM or SM4-GCM (GB/T 39786, for customers assessed on 商用密码),
  chosen by ``KEHU_DATA_CIPHER``;
* the key comes from ``KEHU_DATA_KEYS`` (``id=base64key,id=base64key…``; the first encrypts, all
  decrypt), so keys can be rotated: add a new key in front and run ``kehu rotate-data-keys``;
* the field's purpose is bound in as associated data, so a ciphertext copied into another column
  does not decrypt.

A dump of the database shows none of the values. Exact search still works through a blind index:
an HMAC of the normalised value under ``KEHU_INDEX_KEY``, which never changes with the data keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models

PREFIX = "v1"
CIPHERS = {"aes-256-gcm": 32, "sm4-gcm": 16}


def _derived(label: str, length: int) -> bytes:
    return hashlib.sha256(f"kehu:{label}:".encode() + settings.SECRET_KEY.encode()).digest()[:length]


@lru_cache(maxsize=8)
def _keys(raw: str, cipher: str) -> tuple[str, dict[str, bytes]]:
    """(current key id, {id: key}) from the KEHU_DATA_KEYS text; derived from the secret key when empty."""
    if cipher not in CIPHERS:
        raise ImproperlyConfigured(f"KEHU_DATA_CIPHER must be one of {', '.join(CIPHERS)}, not {cipher!r}.")
    if not raw.strip():
        return "k0", {"k0": _derived(f"data-key:{cipher}", CIPHERS[cipher])}
    keys: dict[str, bytes] = {}
    order: list[str] = []
    for item in raw.split(","):
        key_id, _, b64 = item.strip().partition("=")
        try:
            key = base64.b64decode(b64, validate=True)
        except ValueError:
            raise ImproperlyConfigured(f"KEHU_DATA_KEYS: the key {key_id!r} is not valid base64.") from None
        if not key_id or "." in key_id or len(key) != CIPHERS[cipher]:
            raise ImproperlyConfigured(
                f"KEHU_DATA_KEYS: each entry is id=base64key with a {CIPHERS[cipher]}-byte key for {cipher} "
                f"(make one with `python -c 'import os,base64;print(base64.b64encode(os.urandom({CIPHERS[cipher]})).decode())'`)."
            )
        keys[key_id] = key
        order.append(key_id)
    return order[0], keys


def current_keys() -> tuple[str, dict[str, bytes]]:
    return _keys(settings.KEHU_DATA_KEYS, settings.KEHU_DATA_CIPHER)


def _aead(cipher: str, key: bytes):
    if cipher == "aes-256-gcm":
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        return AESGCM(key)
    return _Sm4Gcm(key)


class _Sm4Gcm:
    """SM4 in GCM mode with the same encrypt/decrypt shape as AESGCM."""

    def __init__(self, key: bytes):
        self.key = key

    def encrypt(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        encryptor = Cipher(algorithms.SM4(self.key), modes.GCM(nonce)).encryptor()
        encryptor.authenticate_additional_data(aad)
        return encryptor.update(data) + encryptor.finalize() + encryptor.tag

    def decrypt(self, nonce: bytes, data: bytes, aad: bytes) -> bytes:
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        decryptor = Cipher(algorithms.SM4(self.key), modes.GCM(nonce, data[-16:])).decryptor()
        decryptor.authenticate_additional_data(aad)
        return decryptor.update(data[:-16]) + decryptor.finalize()


def encrypt(plaintext: str, *, purpose: str) -> str:
    key_id, keys = current_keys()
    cipher = settings.KEHU_DATA_CIPHER
    nonce = os.urandom(12)
    sealed = _aead(cipher, keys[key_id]).encrypt(nonce, plaintext.encode(), purpose.encode())
    return f"{PREFIX}.{key_id}.{cipher}.{base64.b64encode(nonce + sealed).decode()}"


def decrypt(token: str, *, purpose: str) -> str:
    """The plaintext; ValueError when the value was altered, moved to another purpose or its key is gone."""
    try:
        prefix, key_id, cipher, b64 = token.split(".", 3)
        blob = base64.b64decode(b64)
    except ValueError:
        raise ValueError("not an encrypted value") from None
    _current, keys = current_keys()
    if prefix != PREFIX or key_id not in keys:
        raise ValueError(f"no key {key_id!r} in KEHU_DATA_KEYS")
    try:
        return _aead(cipher, keys[key_id]).decrypt(blob[:12], blob[12:], purpose.encode()).decode()
    except Exception:  # InvalidTag and friends: never say more than "does not decrypt"
        raise ValueError(
            "the encrypted value does not decrypt (altered, or copied from another field)"
        ) from None


def key_id_of(token: str) -> str:
    return token.split(".", 2)[1] if token.count(".") >= 3 else ""


def blind_index(value: str, *, purpose: str) -> str:
    key = settings.KEHU_INDEX_KEY.encode() if settings.KEHU_INDEX_KEY else _derived("index-key", 32)
    return hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()[:32]


class EncryptedTextField(models.TextField):
    """Stores its value encrypted (see module doc); Python code sees plaintext. Not searchable: pair it
    with a blind-index column for exact lookups."""

    def __init__(self, *args, purpose: str = "", **kwargs):
        self.purpose = purpose
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        kwargs["purpose"] = self.purpose
        return name, path, args, kwargs

    def _purpose(self) -> str:
        return self.purpose or f"{self.model._meta.label_lower}.{self.name}"

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        return decrypt(value, purpose=self._purpose())

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return encrypt(value, purpose=self._purpose())


# ---------------------------------------------------------------- masking


def mask_phone(number: str) -> str:
    """138****1234 for a mobile number; keep the area code and last 4 digits of a landline."""
    digits = "".join(c for c in number or "" if c.isdigit())
    if len(digits) <= 4:
        return "*" * len(digits)
    if len(digits) == 11 and digits.startswith("1"):
        return digits[:3] + "****" + digits[-4:]
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:] if len(digits) > 7 else "***" + digits[-4:]


def mask_id_card(number: str) -> str:
    """110***********001X: the first 3 and last 4 characters of an ID card number."""
    number = (number or "").strip()
    return number[:3] + "*" * max(0, len(number) - 7) + number[-4:] if len(number) > 7 else "*" * len(number)
