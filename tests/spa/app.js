// A browser application as its developer writes it with oidc-client-ts: sign in with the
// authorization code and PKCE, renew with the refresh token, sign out at the end session
// endpoint. What it sees is written into the page, where the test reads it.
"use strict";

const show = (id, text) => {
  document.getElementById(id).textContent = text;
};

const fail = (error) => {
  show("error", String((error && error.message) || error));
  show("status", "failed");
};

const render = (user) => {
  if (user && !user.expired) {
    show("status", "signed in");
    show("profile", JSON.stringify(user.profile));
    show("access-token", user.access_token);
  } else {
    show("status", "signed out");
    show("profile", "");
    show("access-token", "");
  }
};

async function main() {
  // The test serves the server's address and the client's id beside the page.
  const config = await (await fetch("/config.json")).json();
  const manager = new oidc.UserManager({
    authority: config.authority,
    client_id: config.client_id,
    redirect_uri: location.origin + "/callback",
    post_logout_redirect_uri: location.origin + "/signed-out",
    response_type: "code",
    scope: "openid profile email offline_access",
    loadUserInfo: true,
    automaticSilentRenew: false,
    userStore: new oidc.WebStorageStateStore({ store: window.localStorage }),
  });
  document.getElementById("sign-in").onclick = () => manager.signinRedirect().catch(fail);
  document.getElementById("renew").onclick = () => manager.signinSilent().then(render, fail);
  document.getElementById("sign-out").onclick = () => manager.signoutRedirect().catch(fail);

  if (location.pathname === "/callback") {
    const user = await manager.signinRedirectCallback();
    history.replaceState(null, "", "/");
    render(user);
  } else if (location.pathname === "/signed-out") {
    await manager.signoutRedirectCallback();
    render(null);
  } else {
    render(await manager.getUser());
  }
}

main().catch(fail);
