// "Sign in with a passkey" on the login page (WebAuthn, passwordless): ask Sigil for a
// discoverable authentication, let the browser's passkey dialog answer it, send the answer
// back, and follow where Sigil says to go next. Without this script (or without WebAuthn in
// the browser) the button stays hidden and the password form works as before.
(function () {
  "use strict";
  var box = document.getElementById("passkey");
  var button = document.getElementById("passkey-button");
  var message = document.getElementById("passkey-error");
  if (!box || !button || !window.PublicKeyCredential || !navigator.credentials) {
    return;
  }
  box.hidden = false;

  function toBuffer(b64url) {
    var b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) {
      b64 += "=";
    }
    var bin = atob(b64);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) {
      bytes[i] = bin.charCodeAt(i);
    }
    return bytes.buffer;
  }

  function toB64url(buffer) {
    if (!buffer) {
      return null;
    }
    var bytes = new Uint8Array(buffer);
    var bin = "";
    for (var i = 0; i < bytes.length; i++) {
      bin += String.fromCharCode(bytes[i]);
    }
    return btoa(bin).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function post(path, body) {
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().then(function (json) {
        if (!response.ok) {
          throw new Error(json.error || "refused");
        }
        return json;
      });
    });
  }

  function show(text) {
    message.textContent = text;
    message.hidden = false;
  }

  button.addEventListener("click", function () {
    var ids = { request: box.dataset.request, csrf_token: box.dataset.csrf };
    var ceremony;
    button.disabled = true;
    message.hidden = true;
    post("/login/passkey/options", ids)
      .then(function (answer) {
        ceremony = answer.ceremony;
        var options = answer.options.publicKey;
        options.challenge = toBuffer(options.challenge);
        (options.allowCredentials || []).forEach(function (c) {
          c.id = toBuffer(c.id);
        });
        return navigator.credentials.get({ publicKey: options });
      })
      .then(function (credential) {
        var r = credential.response;
        return post("/login/passkey", {
          request: ids.request,
          csrf_token: ids.csrf_token,
          ceremony: ceremony,
          credential: {
            id: credential.id,
            rawId: toB64url(credential.rawId),
            type: credential.type,
            response: {
              authenticatorData: toB64url(r.authenticatorData),
              clientDataJSON: toB64url(r.clientDataJSON),
              signature: toB64url(r.signature),
              userHandle: toB64url(r.userHandle)
            },
            extensions: credential.getClientExtensionResults()
          }
        });
      })
      .then(function (done) {
        window.location.assign(done.location);
      })
      .catch(function () {
        show("The passkey did not sign you in. Try again, or use your password.");
        button.disabled = false;
      });
  });
})();
