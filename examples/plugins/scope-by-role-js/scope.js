// scope-by-role, in JavaScript: each scope asked for is granted when the roles of the grant
// allow it, by the table below; the access token, the ID token and UserInfo say the user's
// department, read from the same roles; a request left with no scope is refused, saying why.
// scope-by-role-rust and scope-by-role-py are the same policy in Rust and Python, and all
// three pass ../scope-by-role.cases.json.

// Which roles may have each scope: any one of them (none listed: everyone). A scope the
// table does not name is never granted.
const SCOPES = new Map([
  ["openid", []],
  ["profile", []],
  ["hr:read", ["hr", "hr-admin"]],
  ["hr:write", ["hr-admin"]],
  ["finance:read", ["finance", "auditor"]],
]);

// The department each role belongs to; the user's is that of their first role named here.
const DEPARTMENTS = new Map([
  ["hr", "people"],
  ["hr-admin", "people"],
  ["finance", "finance"],
  ["auditor", "finance"],
]);

export const scope = {
  resolve(request) {
    const roles = request.roles;
    // No `scope` parameter: everything the client may have is asked for.
    const asked = request.scopeParameterPresent ? request.requestedScopes : request.client.allowedScopes;
    const allowed = (s) => {
      const needs = SCOPES.get(s);
      return needs !== undefined && (needs.length === 0 || needs.some((n) => roles.includes(n)));
    };
    const scopes = asked.filter(allowed);
    if (scopes.length === 0) {
      // A thrown variant is the result's error: the denial.
      throw { tag: "access-denied", val: `the roles [${roles.join(" ")}] allow none of [${asked.join(" ")}]` };
    }
    const role = roles.find((r) => DEPARTMENTS.has(r));
    const claims =
      role === undefined
        ? []
        : [
            {
              name: "department",
              value: JSON.stringify(DEPARTMENTS.get(role)),
              targets: { accessToken: true, idToken: true, userinfo: true },
            },
          ];
    return { scopes, claims };
  },
};
