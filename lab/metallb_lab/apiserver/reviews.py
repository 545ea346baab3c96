"""The answers to `kubectl auth whoami` and `kubectl auth can-i` (pure).

The embedded server authenticates nobody and allows every request, so it says exactly that:
the caller is anonymous, any access it asks about is allowed, its rules are `*` on everything.
What RBAC really grants is judged on kube-apiserver (docs/apiserver.md, "Deviations").
"""

from __future__ import annotations

from metallb_lab import Obj

ALLOWED_REASON = "the embedded API server authorizes every request"
ANONYMOUS = {"username": "system:anonymous", "groups": ["system:unauthenticated"]}
"""Who every caller is here: no credentials are checked."""


def _status(kind: str) -> Obj:
    if kind == "SelfSubjectReview":
        return {"userInfo": dict(ANONYMOUS)}
    if kind == "SelfSubjectAccessReview":
        return {"allowed": True, "reason": ALLOWED_REASON}
    if kind == "SelfSubjectRulesReview":
        return {
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": False,
        }
    raise KeyError(kind)


KINDS = frozenset({"SelfSubjectReview", "SelfSubjectAccessReview", "SelfSubjectRulesReview"})


def answer(api_version: str, kind: str, request: Obj) -> Obj:
    """The review `request` (of `kind`) with its status filled in, as the server returns it."""
    out: Obj = {"kind": kind, "apiVersion": api_version, "metadata": {}}
    if isinstance(request.get("spec"), dict):
        out["spec"] = request["spec"]
    out["status"] = _status(kind)
    return out
