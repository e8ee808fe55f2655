// A scope policy in JavaScript: grants the requested scopes the client may have, and every
// allowed scope when none was requested.
export const scope = {
  resolve(request) {
    const allowed = new Set(request.client.allowedScopes);
    const scopes = request.scopeParameterPresent
      ? request.requestedScopes.filter((s) => allowed.has(s))
      : [...allowed];
    if (request.scopeParameterPresent && scopes.length === 0) {
      throw { tag: "invalid-scope", val: "none of the requested scopes is allowed" };
    }
    return { scopes, claims: [{ name: "policy_language", value: '"javascript"', targets: { accessToken: true } }] };
  },
};
