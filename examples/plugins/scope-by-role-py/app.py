"""scope-by-role, in Python: each scope asked for is granted when the roles of the grant allow
it, by the table below; the access token, the ID token and UserInfo say the user's department,
read from the same roles; a request left with no scope is refused, saying why.
scope-by-role-rust and scope-by-role-js are the same policy in Rust and JavaScript, and all
three pass ../scope-by-role.cases.json."""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports.scope import Claim, ClaimTargets, Denial_AccessDenied, Grant, ScopeRequest

# Which roles may have each scope: any one of them (none listed: everyone). A scope the table
# does not name is never granted.
SCOPES = {
    "openid": [],
    "profile": [],
    "hr:read": ["hr", "hr-admin"],
    "hr:write": ["hr-admin"],
    "finance:read": ["finance", "auditor"],
}

# The department each role belongs to; the user's is that of their first role named here.
DEPARTMENTS = {
    "hr": "people",
    "hr-admin": "people",
    "finance": "finance",
    "auditor": "finance",
}


class Scope(exports.Scope):
    def resolve(self, request: ScopeRequest) -> Grant:
        roles = request.roles
        # No `scope` parameter: everything the client may have is asked for.
        asked = request.requested_scopes if request.scope_parameter_present else request.client.allowed_scopes

        def allowed(scope: str) -> bool:
            needs = SCOPES.get(scope)
            return needs is not None and (not needs or any(n in roles for n in needs))

        scopes = [s for s in asked if allowed(s)]
        if not scopes:
            raise Err(Denial_AccessDenied(f"the roles [{' '.join(roles)}] allow none of [{' '.join(asked)}]"))
        department = next((DEPARTMENTS[r] for r in roles if r in DEPARTMENTS), None)
        claims = []
        if department is not None:
            targets = ClaimTargets.ACCESS_TOKEN | ClaimTargets.ID_TOKEN | ClaimTargets.USERINFO
            claims.append(Claim(name="department", value=json.dumps(department), targets=targets))
        return Grant(scopes=scopes, claims=claims)
