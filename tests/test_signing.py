"""Signed notes and checkpoints: byte compatibility with Go's golang.org/x/mod/sumdb/note (its
published test key, text and signatures), tampering refused, checkpoint bodies, and the log's
key file (created 0600 once, reloaded, rotated with the old checkpoints still verifying)."""

from __future__ import annotations

import base64
import hashlib
import os
import pickle
import stat
import threading
from pathlib import Path

import pytest

from persistence.note import (
    AmbiguousKeyError,
    InvalidSignatureError,
    MalformedKeyError,
    MalformedNoteError,
    NoteError,
    Signer,
    UnverifiedNoteError,
    Verifier,
    Verifiers,
    key_hash,
    open_note,
    sign_note,
)
from persistence.settings import Settings
from persistence.signing import (
    Checkpoint,
    CheckpointError,
    LogKeyError,
    LogKeyFile,
    LogKeys,
    default_origin,
    load_or_create,
    open_checkpoint,
    retired_path,
    rotate,
)

# golang.org/x/mod/sumdb/note note_test.go: the PeterNeumann and EnochRoot keys, the text and
# the signatures Go's Sign writes for it.
PETER_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
PETER_SKEY = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
ENOCH_VKEY = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop"
TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
PETER_B64 = (
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="
)
ENOCH_B64 = (
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ="
)
PETER_SIG = f"\u2014 PeterNeumann {PETER_B64}\n"
ENOCH_SIG = f"\u2014 EnochRoot {ENOCH_B64}\n"
ROOT = hashlib.sha256(b"a root").digest()


def known(*keys: str) -> Verifiers:
    return Verifiers(keys)


def splice(line: str, at: int, extra: str) -> str:
    # Go's tests cut at byte offsets; the em dash is three bytes.
    raw = line.encode()
    return (raw[:at] + extra.encode() + raw[at:]).decode()


def manglings(key: str) -> set[str]:
    """Go's manglings of a key string: every proper substring, every character plus one."""
    out = {key[i:j] for i in range(len(key)) for j in range(i + 1, len(key) + 1)}
    out |= {key[:i] + chr(ord(key[i]) + 1) + key[i + 1 :] for i in range(len(key))}
    return out - {key}


# --- Go's vectors ---------------------------------------------------------------------------


def test_the_go_verifier_key_parses_with_its_key_hash() -> None:
    verifier = Verifier.parse(PETER_VKEY)
    assert (verifier.name, verifier.key_hash) == ("PeterNeumann", 0xC74F20A3)
    assert key_hash("PeterNeumann", verifier.public_key) == 0xC74F20A3
    assert verifier.key == PETER_VKEY
    assert Verifier.parse(ENOCH_VKEY).key_hash == 0xAF0CFE78


def test_every_mangling_of_the_go_verifier_key_is_refused() -> None:
    for bad in sorted(manglings(PETER_VKEY)):
        with pytest.raises(MalformedKeyError):
            Verifier.parse(bad)
    with pytest.raises(MalformedKeyError):  # wrong length key, with adjusted key hash
        Verifier.parse("PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
    with pytest.raises(MalformedKeyError):  # unknown algorithm, with adjusted key hash
        Verifier.parse("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")


def test_the_go_signer_key_parses_and_every_mangling_is_refused() -> None:
    signer = Signer.parse(PETER_SKEY)
    assert signer.verifier.key == PETER_VKEY
    assert signer.secret_key() == PETER_SKEY
    for bad in sorted(manglings(PETER_SKEY)):
        with pytest.raises(MalformedKeyError):
            Signer.parse(bad)


def test_signing_the_go_text_gives_the_go_note_byte_for_byte() -> None:
    # Ed25519 is deterministic (RFC 8032), so the same key and text give Go's exact bytes.
    assert sign_note(TEXT, [Signer.parse(PETER_SKEY)]) == TEXT + "\n" + PETER_SIG


def test_opening_the_go_note_verifies_known_keys_and_sets_unknown_ones_aside() -> None:
    note = open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, known(PETER_VKEY))
    assert note.text == TEXT
    assert [(s.name, s.key_hash, s.base64) for s in note.signatures] == [
        ("PeterNeumann", 0xC74F20A3, PETER_B64)
    ]
    assert [s.base64 for s in note.unverified] == [ENOCH_B64]
    both = open_note((TEXT + "\n" + PETER_SIG + ENOCH_SIG).encode(), known(PETER_VKEY, ENOCH_VKEY))
    assert [s.name for s in both.signatures] == ["PeterNeumann", "EnochRoot"]
    assert both.unverified == ()
    with pytest.raises(UnverifiedNoteError, match="no verifiable signatures"):
        open_note(TEXT + "\n" + PETER_SIG + ENOCH_SIG, known())


def test_repeated_signatures_count_once_and_a_bad_unknown_one_is_set_aside() -> None:
    enoch_abcd = splice(ENOCH_SIG, 60, "ABCD")
    msg = TEXT + "\n" + PETER_SIG + PETER_SIG + ENOCH_SIG + ENOCH_SIG + enoch_abcd
    note = open_note(msg, known(PETER_VKEY))
    assert [s.name for s in note.signatures] == ["PeterNeumann"]
    assert [s.base64 for s in note.unverified] == [ENOCH_B64, enoch_abcd.split()[-1]]


def test_only_the_first_signature_of_a_known_key_is_checked() -> None:
    # Go's Open drops a known key's later signatures unchecked, whatever they hold.
    blob = bytearray(base64.b64decode(PETER_B64))
    blob[-1] ^= 1
    bad = f"\u2014 PeterNeumann {base64.b64encode(blob).decode()}\n"
    note = open_note(TEXT + "\n" + PETER_SIG + bad, known(PETER_VKEY))
    assert [s.base64 for s in note.signatures] == [PETER_B64]
    with pytest.raises(InvalidSignatureError):
        open_note(TEXT + "\n" + bad + PETER_SIG, known(PETER_VKEY))


def test_an_invalid_signature_by_a_known_key_refuses_the_note() -> None:
    with pytest.raises(
        InvalidSignatureError, match=r"^invalid signature for key PeterNeumann\+c74f20a3$"
    ):
        open_note(TEXT + "\n" + splice(PETER_SIG, 60, "ABCD"), known(PETER_VKEY))


def test_two_different_keys_of_one_name_and_hash_are_ambiguous() -> None:
    enoch = Verifier.parse(ENOCH_VKEY)
    twin = Verifier(enoch.name, enoch.key_hash, bytes(32))
    with pytest.raises(AmbiguousKeyError, match=r"ambiguous key EnochRoot\+af0cfe78"):
        open_note(TEXT + "\n" + ENOCH_SIG, Verifiers([enoch, Verifier.parse(PETER_VKEY), twin]))
    # Unused, the ambiguity does not matter; the same key given twice is no ambiguity.
    open_note(TEXT + "\n" + PETER_SIG, Verifiers([enoch, Verifier.parse(PETER_VKEY), twin]))
    open_note(TEXT + "\n" + ENOCH_SIG, known(ENOCH_VKEY, ENOCH_VKEY))


@pytest.mark.parametrize(
    "msg",
    [
        TEXT,
        TEXT + "\n",
        TEXT + "\n" + PETER_SIG[:-1],
        "\x01" + TEXT + "\n" + PETER_SIG,
        TEXT + "\n" + "\u2014 Bad Name " + PETER_B64 + "\n",
        TEXT + "\n" + PETER_SIG + "Unexpected line.\n",
        TEXT + "\n" + PETER_SIG * 101,
        TEXT + "\n" + "\u2014 PeterNeumann\n",
        TEXT + "\n" + "\u2014 Peter+Neumann " + PETER_B64 + "\n",
        TEXT + "\n" + "- PeterNeumann " + PETER_B64 + "\n",
        TEXT + "\n" + "\u2014 PeterNeumann AAAA\n",
        TEXT.replace("\n", "\r\n", 1) + "\n" + PETER_SIG,
    ],
)
def test_malformed_notes_are_refused(msg: str) -> None:
    with pytest.raises(MalformedNoteError, match=r"^malformed note$"):
        open_note(msg, known(PETER_VKEY))


def test_a_note_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(MalformedNoteError):
        open_note(b"\xff" + (TEXT + "\n" + PETER_SIG).encode(), known(PETER_VKEY))


# --- tampering ------------------------------------------------------------------------------


def test_tampered_text_signature_or_a_foreign_key_is_refused() -> None:
    note = TEXT + "\n" + PETER_SIG
    with pytest.raises(InvalidSignatureError):
        open_note(note.replace("cryptography", "cryptographY"), known(PETER_VKEY))
    blob = bytearray(base64.b64decode(PETER_B64))
    blob[-1] ^= 1
    flipped = note.replace(PETER_B64, base64.b64encode(blob).decode())
    with pytest.raises(InvalidSignatureError):
        open_note(flipped, known(PETER_VKEY))
    # A key of the same name that is not the known one signs nothing the verifier trusts.
    forger = Signer.generate("PeterNeumann")
    with pytest.raises(UnverifiedNoteError):
        open_note(sign_note(TEXT, [forger]), known(PETER_VKEY))


def test_signing_refuses_text_a_note_cannot_carry() -> None:
    signer = Signer.parse(PETER_SKEY)
    for text in ("abc", TEXT[:-1], "tab\there\n", "\ud800\n"):
        with pytest.raises(MalformedNoteError):
            sign_note(text, [signer])
    for name in ("", "a b", "a+b", "a\u00a0b", "line\nbreak"):
        with pytest.raises(MalformedKeyError):
            Signer.generate(name)


def test_the_secret_never_shows_in_repr_str_errors_or_pickles(tmp_path: Path) -> None:
    signer = Signer.parse(PETER_SKEY)
    seed64 = PETER_SKEY.rsplit("+", 1)[1]
    shown = [repr(signer), str(signer), repr(LogKeys(signer)), f"{signer}"]
    assert all(seed64 not in text and "PRIVATE" not in text for text in shown)
    assert "PeterNeumann+c74f20a3" in repr(signer)
    bad = PETER_SKEY[:-2] + "zz"
    with pytest.raises(NoteError) as caught:
        Signer.parse(bad)
    assert bad.rsplit("+", 1)[1] not in str(caught.value)
    path = tmp_path / "log.key"
    path.write_text(bad + "\n")
    with pytest.raises(LogKeyError) as raised:
        load_or_create(path)
    assert bad.rsplit("+", 1)[1] not in str(raised.value)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    with pytest.raises(TypeError):
        pickle.dumps(signer)


# --- checkpoints ----------------------------------------------------------------------------

SPEC_BODY = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"


def test_a_checkpoint_body_round_trips() -> None:
    parsed = Checkpoint.parse(SPEC_BODY)
    assert (parsed.origin, parsed.size, len(parsed.root_hash)) == (
        "example.com/behind-the-sofa",
        20852163,
        32,
    )
    assert parsed.body() == SPEC_BODY
    for checkpoint in (
        Checkpoint("log.example/a", 0, hashlib.sha256(b"").digest()),
        Checkpoint("log.example/a", 2**64 - 1, ROOT, ("ext one", "ext two")),
    ):
        assert Checkpoint.parse(checkpoint.body()) == checkpoint
    assert Checkpoint("o", 7, ROOT).body() == f"o\n7\n{base64.b64encode(ROOT).decode()}\n"


@pytest.mark.parametrize(
    "body",
    [
        SPEC_BODY[:-1],  # no final newline
        "example.com/a\n5\n",  # two lines
        "\n5\n" + SPEC_BODY.split("\n")[2] + "\n",  # empty origin
        SPEC_BODY.replace("\n20852163\n", "\n020852163\n"),
        SPEC_BODY.replace("\n20852163\n", "\n+20852163\n"),
        SPEC_BODY.replace("\n20852163\n", "\n-1\n"),
        SPEC_BODY.replace("\n20852163\n", "\n 20852163\n"),
        SPEC_BODY.replace("\n20852163\n", "\n2_0852163\n"),
        SPEC_BODY.replace("\n20852163\n", "\n\u0663\n"),  # an Arabic-Indic three
        SPEC_BODY.replace("\n20852163\n", f"\n{2**64}\n"),
        SPEC_BODY.replace("\n20852163\n", f"\n{'9' * 5000}\n"),
        SPEC_BODY.replace("q2I=", "q2J="),  # same bytes, not the canonical spelling
        SPEC_BODY.replace("q2I=", "q2I"),
        SPEC_BODY.replace("CsUY", "CsU-"),
        "o\n1\n" + base64.b64encode(ROOT[:31]).decode() + "\n",
        SPEC_BODY + "\n",  # an empty extension line
        SPEC_BODY.replace("example.com", "exa\rmple.com"),
    ],
)
def test_malformed_checkpoint_bodies_are_refused(body: str) -> None:
    with pytest.raises(CheckpointError):
        Checkpoint.parse(body)


# transparency-dev/witness's tests: checkpoints of the log "monkeys" signed by Go's note package.
MONKEYS_VKEY = "monkeys+db4d9f7e+AULaJMvTtDLHPUcUrjdDad9vDlh/PTfC2VV60JUtCfWT"
MONKEYS_SKEY = "PRIVATE+KEY+monkeys+db4d9f7e+ATWIAF3yVBG+Hv1rZFQoNt/BaURkLPtOFMAM2HrEeIr6"
MONKEYS_CHECKPOINTS = [
    (
        5,
        "41smjBUiAU70EtKlT6lIOIYtRTYxYXsDB+XHfcvu/BE=",
        "202fftzGl3LVoqjXfwCFZZXs8I+5G22+Ek2K0AOyBuSJ/8/CZawNF+6fNlTKOCd622pbzJNkkJFWuw9DbicZCkEx9AY=",
    ),
    (
        8,
        "V8K9aklZ4EPB+RMOk1/8VsJUdFZR77GDtZUQq84vSbo=",
        "202ffoUEboiQYpHzICeaFmoy3RNviHTpAxYrq/eO4QQVQMvu9UebKBMX2MJC76NLthZaKsnKbCA8GxrjePZhvDCH7Ag=",
    ),
]


@pytest.mark.parametrize(("size", "root", "signature"), MONKEYS_CHECKPOINTS)
def test_a_checkpoint_is_signed_as_go_signs_it(size: int, root: str, signature: str) -> None:
    go_note = f"monkeys\n{size}\n{root}\n\n\u2014 monkeys {signature}\n"
    keys = LogKeys(Signer.parse(MONKEYS_SKEY))
    assert keys.verifier_key == MONKEYS_VKEY
    assert keys.sign_checkpoint(size, base64.b64decode(root)) == go_note
    opened = open_checkpoint(go_note, [MONKEYS_VKEY], "monkeys")
    assert (opened.size, base64.b64encode(opened.root_hash).decode()) == (size, root)


def test_a_signed_checkpoint_opens_only_with_the_log_key() -> None:
    keys = LogKeys(Signer.generate("ledger.example/log"))
    note = keys.sign_checkpoint(42, ROOT)
    assert note.startswith(f"ledger.example/log\n42\n{base64.b64encode(ROOT).decode()}\n\n\u2014 ")
    assert keys.open_checkpoint(note) == Checkpoint("ledger.example/log", 42, ROOT)
    assert open_checkpoint(note, [keys.verifier_key], "ledger.example/log").size == 42
    with pytest.raises(CheckpointError, match="another log"):
        open_checkpoint(note, [keys.verifier_key], "ledger.example/other")
    with pytest.raises(UnverifiedNoteError):
        LogKeys(Signer.generate("ledger.example/log")).open_checkpoint(note)
    with pytest.raises(InvalidSignatureError):
        keys.open_checkpoint(note.replace("\n42\n", "\n43\n"))
    # A witness's valid signature alone does not vouch for the log's head.
    witness = Signer.generate("witness.example")
    cosigned = sign_note(Checkpoint("ledger.example/log", 42, ROOT).body(), [witness])
    with pytest.raises(CheckpointError, match="origin"):
        open_checkpoint(cosigned, [keys.verifier_key, witness.verifier.key])


# --- the key file ---------------------------------------------------------------------------


def test_load_or_create_makes_one_owner_only_key_and_reloads_it(tmp_path: Path) -> None:
    path = tmp_path / "data" / "keys" / "log.key"
    old_umask = os.umask(0)  # a permissive umask must not widen the key file
    try:
        keys = load_or_create(path, "ledger.example/log")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_bytes()
    assert content == (keys.signer.secret_key() + "\n").encode()
    again = load_or_create(path, "ledger.example/log")
    assert again.verifier_key == keys.verifier_key and path.read_bytes() == content
    assert load_or_create(path).origin == "ledger.example/log"
    assert sorted(p.name for p in path.parent.iterdir()) == ["log.key"]  # no temporary left
    with pytest.raises(LogKeyError, match="rotate"):
        load_or_create(path, "ledger.example/other")
    with pytest.raises(LogKeyError):
        load_or_create(tmp_path / "x.key", "has space")


def test_a_new_key_without_an_origin_is_named_after_the_host(tmp_path: Path) -> None:
    keys = load_or_create(tmp_path / "log.key")
    assert keys.origin == default_origin() and keys.origin.endswith("/session-ledger")


def test_processes_starting_at_once_share_one_key(tmp_path: Path) -> None:
    path = tmp_path / "log.key"
    barrier = threading.Barrier(8)
    found: list[str] = []

    def start() -> None:
        barrier.wait()
        found.append(load_or_create(path, "ledger.example/log").verifier_key)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 8 and len(set(found)) == 1
    assert found[0] == load_or_create(path).verifier_key


def test_rotation_keeps_old_checkpoints_verifiable(tmp_path: Path) -> None:
    path = tmp_path / "log.key"
    first = load_or_create(path, "ledger.example/log")
    old_note = first.sign_checkpoint(3, ROOT)
    second = rotate(path)
    assert second.verifier_key != first.verifier_key
    assert second.verifier_keys == (second.verifier_key, first.verifier_key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    reloaded = load_or_create(path, "ledger.example/log")
    assert reloaded.verifier_keys == second.verifier_keys
    assert reloaded.open_checkpoint(old_note).size == 3
    assert reloaded.open_checkpoint(reloaded.sign_checkpoint(4, ROOT)).size == 4
    assert retired_path(path).read_text() == first.verifier_key + "\n"
    renamed = rotate(path, "ledger.example/renamed")
    assert renamed.origin == "ledger.example/renamed"
    assert renamed.verifier_keys[1:] == (second.verifier_key, first.verifier_key)
    assert renamed.open_checkpoint(old_note).origin == "ledger.example/log"
    assert "PRIVATE" not in retired_path(path).read_text()


def test_a_server_picks_up_a_rotated_key(tmp_path: Path) -> None:
    key_file = LogKeyFile(tmp_path / "log.key", "ledger.example/log")
    before = key_file.keys()
    assert key_file.keys() is before  # cached while the file is unchanged
    rotated = rotate(tmp_path / "log.key")
    assert key_file.keys().verifier_key == rotated.verifier_key
    (tmp_path / "log.key").unlink()
    assert key_file.keys().verifier_key == rotated.verifier_key  # never a silent new key


def test_settings_name_the_key_file_and_origin(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGER_LOG_KEY", raising=False)
    monkeypatch.delenv("LEDGER_LOG_ORIGIN", raising=False)
    monkeypatch.delenv("LEDGER_BLOB_DIR", raising=False)
    default = Settings.from_env()
    assert (default.log_key, default.log_origin) == (Path("var/log.key"), "")
    assert Settings(blob_dir=Path("/srv/ledger/blobs")).log_key == Path("/srv/ledger/log.key")
    monkeypatch.setenv("LEDGER_LOG_KEY", "/etc/ledger/log.key")
    monkeypatch.setenv("LEDGER_LOG_ORIGIN", "ledger.example/audit")
    configured = Settings.from_env()
    assert configured.log_key == Path("/etc/ledger/log.key")
    assert configured.log_origin == "ledger.example/audit"
    monkeypatch.setenv("LEDGER_LOG_ORIGIN", "two words")
    with pytest.raises(ValueError, match="LEDGER_LOG_ORIGIN"):
        Settings.from_env()
