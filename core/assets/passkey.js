// The WebAuthn ceremony of a page's passkey form (WebAuthn Level 3 §5.1.3, §5.1.4). A button
// with `data-passkey` runs it: the form's `data-passkey-options` (the `publicKey` options the
// server made, binary members base64url) go to navigator.credentials.create (they name a
// user) or navigator.credentials.get; the credential, binary members base64url again, is
// written as JSON into the form's hidden `passkey-response`, and the form is submitted with
// the button's name and value. A ceremony the person cancels leaves the page as it was.
(function () {
  "use strict";

  function toBuffer(text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) base64 += "=";
    var binary = atob(base64);
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toText(buffer) {
    if (!buffer) return null;
    var bytes = new Uint8Array(buffer);
    var binary = "";
    for (var i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function credentialIds(list) {
    (list || []).forEach(function (c) { c.id = toBuffer(c.id); });
  }

  function created(c) {
    return {
      id: c.id,
      rawId: toText(c.rawId),
      type: c.type,
      authenticatorAttachment: c.authenticatorAttachment || null,
      response: {
        attestationObject: toText(c.response.attestationObject),
        clientDataJSON: toText(c.response.clientDataJSON),
        transports: c.response.getTransports ? c.response.getTransports() : []
      },
      extensions: c.getClientExtensionResults ? c.getClientExtensionResults() : {}
    };
  }

  function asserted(c) {
    return {
      id: c.id,
      rawId: toText(c.rawId),
      type: c.type,
      authenticatorAttachment: c.authenticatorAttachment || null,
      response: {
        authenticatorData: toText(c.response.authenticatorData),
        clientDataJSON: toText(c.response.clientDataJSON),
        signature: toText(c.response.signature),
        userHandle: toText(c.response.userHandle)
      },
      extensions: c.getClientExtensionResults ? c.getClientExtensionResults() : {}
    };
  }

  function run(button) {
    var form = button.form;
    if (!form || !window.PublicKeyCredential) return;
    var options = JSON.parse(form.getAttribute("data-passkey-options"));
    options.challenge = toBuffer(options.challenge);
    var creating = !!options.user;
    var ceremony;
    if (creating) {
      options.user.id = toBuffer(options.user.id);
      credentialIds(options.excludeCredentials);
      ceremony = navigator.credentials.create({ publicKey: options });
    } else {
      credentialIds(options.allowCredentials);
      ceremony = navigator.credentials.get({ publicKey: options });
    }
    ceremony.then(function (credential) {
      var response = form.querySelector("input[name='passkey-response']");
      response.value = JSON.stringify(creating ? created(credential) : asserted(credential));
      if (button.name) {
        var pressed = document.createElement("input");
        pressed.type = "hidden";
        pressed.name = button.name;
        pressed.value = button.value;
        form.appendChild(pressed);
      }
      form.submit();
    }, function () {});
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-passkey]") : null;
    if (!button) return;
    event.preventDefault();
    run(button);
  });
})();
