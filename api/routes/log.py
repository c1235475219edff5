"""The transparency log under /v1/log: the signed checkpoint, the verifier key, leaves and
the two RFC 6962 proofs (docs/log-format.md says what each byte means).

The tree is the event store's (`EventStore.tree`, persistence/tree.py), the signing key the
container's (`Container.log_keys`, persistence/signing.py). Hashes and leaves travel in
standard base64. Every route needs the `audit` scope (api/auth.py); a key limited to
projects is refused, as on the global log, because a leaf is any project's event.
"""

from __future__ import annotations

import base64
from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.responses import Response

from api import openapi as a
from api.deps import ContainerDep

router = APIRouter(prefix="/v1/log", tags=["transparency log"])

# The most leaves one request returns (a verifier pages through the log).
MAX_LEAVES = 1000
NOTE = "text/plain; charset=utf-8"
Index = Annotated[int, Query(ge=0, le=2**63 - 1)]
Size = Annotated[int, Query(ge=1, le=2**63 - 1)]


def b64(hashes: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode() for h in hashes]


@router.get(
    "/checkpoint",
    response_class=Response,
    responses={
        200: {"content": {NOTE: {"schema": {"type": "string"}}}},
        **a.documented(None, 401, 403, 503),
    },
)
def checkpoint(container: ContainerDep) -> Response:
    """The newest tree as a signed note: origin, tree size, base64 root hash, a blank line,
    then `— <key name> <base64(key hash || Ed25519 signature)>` (a C2SP checkpoint)."""
    size, root = container.store.tree.latest()
    note = container.log_keys.keys().sign_checkpoint(size, root)
    return Response(note, media_type=NOTE, headers={"Cache-Control": "no-store"})


@router.get(
    "/key",
    response_class=Response,
    responses={
        200: {"content": {NOTE: {"schema": {"type": "string"}}}},
        **a.documented(None, 401, 403, 503),
    },
)
def key(container: ContainerDep) -> Response:
    """The verifier key of the checkpoints' signatures, `<name>+<key hash>+<base64 key>`, as
    Go's golang.org/x/mod/sumdb/note writes it; keys retired by rotation follow, one a line."""
    keys = container.log_keys.keys()
    lines = [keys.verifier_key, *(k for k in keys.verifier_keys if k != keys.verifier_key)]
    return Response("".join(f"{line}\n" for line in lines), media_type=NOTE)


@router.get("/leaves", responses=a.documented(a.Leaves, *a.READ))
def leaves(container: ContainerDep, start: Index, end: Index) -> dict[str, Any]:
    """The exact bytes of leaves `start` to `end - 1`, base64: leaf i is the event at log
    position i + 1. Like Certificate Transparency's get-entries, an answer may hold fewer
    than asked (at most 1000, and none past the tree): ask again from where it stopped."""
    tree = container.store.tree
    end = min(end, start + MAX_LEAVES, max(start, tree.size()))
    return {"start": start, "leaves": b64(tree.leaves(start, end))}


@router.get("/proof/inclusion", responses=a.documented(a.InclusionProof, *a.READ))
def inclusion(container: ContainerDep, leaf_index: Index, tree_size: Size) -> dict[str, Any]:
    """RFC 6962 §2.1.1's audit path of leaf `leaf_index` in the tree of the first
    `tree_size` leaves."""
    hashes = container.store.tree.inclusion_proof(leaf_index, tree_size)
    return {"leaf_index": leaf_index, "tree_size": tree_size, "hashes": b64(hashes)}


@router.get("/proof/consistency", responses=a.documented(a.ConsistencyProof, *a.READ))
def consistency(container: ContainerDep, first: Size, second: Size) -> dict[str, Any]:
    """RFC 6962 §2.1.2's consistency proof between the trees of the first `first` and the
    first `second` leaves (empty when they are equal)."""
    hashes = container.store.tree.consistency_proof(first, second)
    return {"first": first, "second": second, "hashes": b64(hashes)}
