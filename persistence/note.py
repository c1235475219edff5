"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, byte for byte as Go's
golang.org/x/mod/sumdb/note writes and reads them: key strings, key hashes, signing, opening.

A verifier key is `<name>+<8 hex key hash>+<base64(0x01 || 32-byte public key)>`, a signer key
`PRIVATE+KEY+<name>+<8 hex key hash>+<base64(0x01 || 32-byte seed)>`. A note is its text (ending
in a newline), a blank line, then one `— <name> <base64(4-byte key hash || signature)>` line per
signature. Nothing here touches a file: the log's key on disk is persistence/signing.py's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NoReturn

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

ALG_ED25519 = 0x01
# Go's Open refuses more; the spec asks verifiers to accept at least 16.
MAX_SIGNATURES = 100
SIGNATURE_PREFIX = "\u2014 "  # em dash, space
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")


class NoteError(ValueError):
    """A key string, note or signature refused. Messages never carry private key material."""


class MalformedKeyError(NoteError):
    """A verifier or signer key string that does not parse, or whose key hash is wrong."""


class MalformedNoteError(NoteError):
    """A note that is not text, blank line, signature lines (or has control characters)."""


class UnverifiedNoteError(NoteError):
    """No signature of the note is by a known key."""


class InvalidSignatureError(NoteError):
    """A known key's signature that does not verify: the whole note is refused."""


class AmbiguousKeyError(NoteError):
    """Two different known keys share a name and key hash."""


def valid_key_name(name: str) -> bool:
    """Go's rule (non-empty, no Unicode space, no '+'), and no control character, which no
    note may carry."""
    return bool(name) and "+" not in name and not any(ch.isspace() or ch < " " for ch in name)


def key_hash(name: str, public_key: bytes) -> int:
    """The key ID: the first 4 bytes, big-endian, of SHA-256(name || 0x0A || 0x01 || key)."""
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def _b64decode(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        return None


def _split_key(text: str, parts: int) -> list[str] | None:
    # Go's chop splits at the first '+' each time: the base64 tail may hold '+' itself.
    fields = text.split("+", parts - 1)
    return fields if len(fields) == parts else None


def _key_material(name: str, hash16: str, key64: str) -> tuple[int, bytes] | None:
    """The (key hash, 32 key bytes) of a key string's fields, or None if they do not parse."""
    raw = _b64decode(key64)
    if raw is None or not _HEX8.fullmatch(hash16) or not valid_key_name(name) or not raw:
        return None
    if raw[0] != ALG_ED25519:
        raise MalformedKeyError("unknown key algorithm")
    if len(raw) != 33:
        return None
    return int(hash16, 16), raw[1:]


def _public_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class Verifier:
    """One Ed25519 public key under a name: checks signatures made by its signer."""

    name: str
    key_hash: int
    public_key: bytes

    @classmethod
    def parse(cls, vkey: str) -> Verifier:
        """A verifier from its key string, refusing a wrong key hash."""
        fields = _split_key(vkey, 3)
        material = _key_material(*fields) if fields else None
        if fields is None or material is None:
            raise MalformedKeyError("malformed verifier key")
        if material[0] != key_hash(fields[0], material[1]):
            raise MalformedKeyError("verifier key hash does not match its key")
        return cls(fields[0], material[0], material[1])

    @property
    def key(self) -> str:
        """The verifier key string a client is given (`GET /v1/log/key`)."""
        data = base64.b64encode(bytes([ALG_ED25519]) + self.public_key).decode()
        return f"{self.name}+{self.key_hash:08x}+{data}"

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True


class Signer:
    """One Ed25519 private key under a name. Its repr and str name the key, never the secret;
    only `secret_key()` gives the signer key string, for the key file."""

    __slots__ = ("_private", "key_hash", "name", "verifier")

    def __init__(self, name: str, private: Ed25519PrivateKey) -> None:
        if not valid_key_name(name):
            raise MalformedKeyError("a key name must be non-empty, without spaces or '+'")
        public = _public_bytes(private.public_key())
        self.name = name
        self.key_hash = key_hash(name, public)
        self.verifier = Verifier(name, self.key_hash, public)
        self._private = private

    @classmethod
    def generate(cls, name: str) -> Signer:
        return cls(name, Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, skey: str) -> Signer:
        """A signer from its `PRIVATE+KEY+...` string, refusing a wrong key hash."""
        fields = _split_key(skey, 5)
        if fields is None or fields[:2] != ["PRIVATE", "KEY"]:
            raise MalformedKeyError("malformed signer key")
        material = _key_material(*fields[2:])
        if material is None:
            raise MalformedKeyError("malformed signer key")
        signer = cls(fields[2], Ed25519PrivateKey.from_private_bytes(material[1]))
        # The hash is of the public key, so it is checked once the seed has given that key.
        if signer.key_hash != material[0]:
            raise MalformedKeyError("signer key hash does not match its key")
        return signer

    def secret_key(self) -> str:
        """The signer key string: whoever holds it signs as this log. Keep it in the key file."""
        seed = self._private.private_bytes_raw()
        data = base64.b64encode(bytes([ALG_ED25519]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.key_hash:08x}+{data}"

    def sign(self, message: bytes) -> bytes:
        return self._private.sign(message)

    def __repr__(self) -> str:
        return f"Signer({self.name}+{self.key_hash:08x})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        # Pickling would copy the secret into wherever the pickle goes (a queue, a cache file).
        raise TypeError("a Signer is not pickled: load it from its key file")


class Verifiers:
    """The known verifier keys, looked up by (name, key hash) as a note's signature names them."""

    def __init__(self, keys: Iterable[Verifier | str]) -> None:
        self._keys: dict[tuple[str, int], set[bytes]] = {}
        for key in keys:
            verifier = Verifier.parse(key) if isinstance(key, str) else key
            known = self._keys.setdefault((verifier.name, verifier.key_hash), set())
            known.add(verifier.public_key)

    def find(self, name: str, hash32: int) -> Verifier | None:
        """The verifier of this name and hash; None if unknown."""
        found = self._keys.get((name, hash32))
        if not found:
            return None
        if len(found) > 1:
            raise AmbiguousKeyError(f"ambiguous key {name}+{hash32:08x}")
        return Verifier(name, hash32, next(iter(found)))


@dataclass(frozen=True, slots=True)
class Signature:
    """One signature line of a note: its key's name and hash, and the line's base64."""

    name: str
    key_hash: int
    base64: str


@dataclass(frozen=True, slots=True)
class Note:
    """An opened note: its text and which signatures were verified (and by unknown keys)."""

    text: str
    signatures: tuple[Signature, ...]
    unverified: tuple[Signature, ...]


def _check_characters(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: not valid UTF-8
        raise MalformedNoteError("malformed note") from None
    if any(ch < " " and ch != "\n" for ch in text):
        raise MalformedNoteError("malformed note")


def sign_note(text: str, signers: Sequence[Signer]) -> str:
    """The signed note of `text` (which must end in a newline) by each signer, in order."""
    if not text.endswith("\n") or not signers:
        raise MalformedNoteError("malformed note")
    _check_characters(text)
    message = text.encode()
    lines = []
    for signer in signers:
        blob = signer.key_hash.to_bytes(4, "big") + signer.sign(message)
        lines.append(f"{SIGNATURE_PREFIX}{signer.name} {base64.b64encode(blob).decode()}\n")
    return text + "\n" + "".join(lines)


def _signature_line(line: str) -> tuple[Signature, bytes]:
    if not line.startswith(SIGNATURE_PREFIX):
        raise MalformedNoteError("malformed note")
    name, _, b64 = line[len(SIGNATURE_PREFIX) :].partition(" ")
    raw = _b64decode(b64)
    if raw is None or not valid_key_name(name) or len(raw) < 5:
        raise MalformedNoteError("malformed note")
    return Signature(name, int.from_bytes(raw[:4], "big"), b64), raw[4:]


def open_note(message: str | bytes, known: Verifiers) -> Note:
    """The note's text once a known key's signature on it verifies; Go's `note.Open` rules:
    unknown keys' signatures are kept aside, a known key's bad signature refuses the note."""
    if isinstance(message, bytes):
        try:
            message = message.decode("utf-8")
        except UnicodeDecodeError:
            raise MalformedNoteError("malformed note") from None
    _check_characters(message)
    split = message.rfind("\n\n")
    if split < 0 or not message.endswith("\n") or split + 2 == len(message):
        raise MalformedNoteError("malformed note")
    text, block = message[: split + 1], message[split + 2 : -1].split("\n")
    if len(block) > MAX_SIGNATURES:
        raise MalformedNoteError("malformed note")
    signed = text.encode()
    verified: dict[tuple[str, int], Signature] = {}
    unverified: dict[str, Signature] = {}
    for line in block:
        signature, raw = _signature_line(line)
        verifier = known.find(signature.name, signature.key_hash)
        if verifier is None:
            unverified.setdefault(line, signature)
        elif (signature.name, signature.key_hash) not in verified:
            if not verifier.verify(signed, raw):
                raise InvalidSignatureError(
                    f"invalid signature for key {signature.name}+{signature.key_hash:08x}"
                )
            verified[signature.name, signature.key_hash] = signature
    if not verified:
        raise UnverifiedNoteError("note has no verifiable signatures")
    return Note(text, tuple(verified.values()), tuple(unverified.values()))
