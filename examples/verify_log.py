"""Check a Session Ledger's transparency log from outside, trusting only its public key.

    python3 verify_log.py URL API_KEY VERIFIER_KEY                  # every leaf, the root
    python3 verify_log.py URL API_KEY VERIFIER_KEY --leaf 41        # one leaf's inclusion
    python3 verify_log.py URL API_KEY VERIFIER_KEY --saved old.txt  # the log only grew
    python3 verify_log.py URL API_KEY VERIFIER_KEY --save new.txt   # keep this checkpoint

VERIFIER_KEY is the `name+hash+key` line of `GET /v1/log/key`, obtained once by another channel.
Exit 0 and "OK ..." when everything checked holds, else 1 and what failed. Written from
docs/log-format.md alone, with the standard library and the `cryptography` package: it
shares no code with the server.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import sys
import urllib.request

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

PAGE = 1000


def h(*parts: bytes) -> bytes:
    return hashlib.sha256(b"".join(parts)).digest()


def get(url: str, key: str) -> bytes:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return bytes(answer.read())


def open_checkpoint(note: bytes, verifier: str) -> tuple[str, int, bytes]:
    """(origin, tree size, root) of a signed checkpoint, or SystemExit when it does not verify."""
    name, key_hash, key = verifier.split("+", 2)
    raw = base64.b64decode(key)
    if raw[0] != 1 or h(name.encode(), b"\n", raw)[:4] != bytes.fromhex(key_hash):
        raise SystemExit("the verifier key is malformed")
    text, _, signatures = note.decode().partition("\n\n")
    text += "\n"
    for line in signatures.splitlines():
        dash, signer, blob = line.split(" ")
        sig = base64.b64decode(blob)
        if dash == "\u2014" and signer == name and sig[:4] == bytes.fromhex(key_hash):
            try:
                Ed25519PublicKey.from_public_bytes(raw[1:]).verify(sig[4:], text.encode())
            except InvalidSignature:
                raise SystemExit("the checkpoint's signature does not verify") from None
            origin, size, root = text.splitlines()[:3]
            return origin, int(size), base64.b64decode(root)
    raise SystemExit(f"the checkpoint carries no signature by {name}")


def tree_root(leaf_hashes: list[bytes]) -> bytes:
    """RFC 6962's MTH over leaf hashes: a stack of perfect subtrees, folded from the right."""
    stack: list[tuple[int, bytes]] = []
    for lh in leaf_hashes:
        size, node = 1, lh
        while stack and stack[-1][0] == size:
            size, node = size * 2, h(b"\x01", stack.pop()[1], node)
        stack.append((size, node))
    if not stack:
        return h()
    node = stack.pop()[1]
    while stack:
        node = h(b"\x01", stack.pop()[1], node)
    return node


def walk(
    fn: int, sn: int, node: bytes, path: list[bytes], second: bytes | None
) -> tuple[bytes, bytes | None, int]:
    """RFC 9162 §2.1.3.2 / §2.1.4.2: fold a proof path; `second` is the consistency proof's sr."""
    for p in path:
        if sn == 0:
            raise SystemExit("the proof is longer than its tree")
        if fn & 1 or fn == sn:
            node = h(b"\x01", p, node)
            second = h(b"\x01", p, second) if second is not None else None
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        elif second is not None:
            second = h(b"\x01", second, p)
        else:
            node = h(b"\x01", node, p)
        fn, sn = fn >> 1, sn >> 1
    return node, second, sn


def check_inclusion(base: str, key: str, index: int, size: int, root: bytes) -> None:
    leaf = json.loads(get(f"{base}/v1/log/leaves?start={index}&end={index + 1}", key))["leaves"][0]
    q = f"{base}/v1/log/proof/inclusion?leaf_index={index}&tree_size={size}"
    path = [base64.b64decode(x) for x in json.loads(get(q, key))["hashes"]]
    got, _, sn = walk(index, size - 1, h(b"\x00", base64.b64decode(leaf)), path, None)
    if sn != 0 or got != root:
        raise SystemExit(f"leaf {index} is not in the tree of the checkpoint")
    print(
        f"OK leaf {index} is in the signed tree of {size} leaves: {base64.b64decode(leaf).decode()}"
    )


def check_consistency(base: str, key: str, old: tuple[int, bytes], new: tuple[int, bytes]) -> None:
    (m, old_root), (n, new_root) = old, new
    if (m == n and old_root == new_root) or m == 0:
        return
    if m >= n:
        raise SystemExit(f"the log shrank or forked: saved size {m}, now {n}")
    path = [
        base64.b64decode(x)
        for x in json.loads(get(f"{base}/v1/log/proof/consistency?first={m}&second={n}", key))[
            "hashes"
        ]
    ]
    if m & (m - 1) == 0:  # a power of two: the old root is the proof's first node
        path = [old_root, *path]
    fn, sn = m - 1, n - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr, sr, sn = walk(fn, sn, path[0], path[1:], path[0])
    if sn != 0 or fr != old_root or sr != new_root:
        raise SystemExit(f"the log of {n} leaves does not extend the saved one of {m}")
    print(f"OK the log of {n} leaves extends the saved checkpoint of {m}")


def main() -> int:
    args = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    for name in ("url", "api_key", "verifier_key"):
        args.add_argument(name)
    args.add_argument("--leaf", type=int, help="check only this leaf's inclusion proof")
    args.add_argument("--saved", help="a checkpoint saved earlier: prove the log only grew")
    args.add_argument("--save", help="write the checkpoint to this file")
    a = args.parse_args()
    base, note = a.url.rstrip("/"), get(a.url.rstrip("/") + "/v1/log/checkpoint", a.api_key)
    origin, size, root = open_checkpoint(note, a.verifier_key)
    print(f"checkpoint of {origin}: {size} leaves, root {root.hex()}, signature good")
    if a.saved:
        with open(a.saved, "rb") as f:
            old_origin, *old = open_checkpoint(f.read(), a.verifier_key)
        if old_origin != origin:
            raise SystemExit(f"the saved checkpoint is of another log: {old_origin}")
        check_consistency(base, a.api_key, (old[0], old[1]), (size, root))
    if a.leaf is not None:
        check_inclusion(base, a.api_key, a.leaf, size, root)
    else:
        hashes: list[bytes] = []
        for start in range(0, size, PAGE):
            page = json.loads(
                get(f"{base}/v1/log/leaves?start={start}&end={min(size, start + PAGE)}", a.api_key)
            )
            for i, leaf in enumerate(page["leaves"], start):
                raw = base64.b64decode(leaf)
                if json.loads(raw)[1] != i + 1:
                    raise SystemExit(f"leaf {i} names position {json.loads(raw)[1]}, not {i + 1}")
                hashes.append(h(b"\x00", raw))
        if len(hashes) != size or tree_root(hashes) != root:
            raise SystemExit("the leaves do not make the checkpoint's root: the log was altered")
        print(f"OK all {size} leaves make the signed root")
    if a.save:
        with open(a.save, "wb") as f:
            f.write(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
