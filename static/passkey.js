// Passkeys (WebAuthn) in the browser, for every passkey button of Sigil's pages. The box
// (#passkey) says what to do in data attributes: `data-mode` "get" (sign in, or the second
// step after a password: navigator.credentials.get) or "create" (add a passkey on the account
// page: navigator.credentials.create, named by #passkey-name), `data-options` and
// `data-finish` the two endpoints (the login page's by default), `data-request` and
// `data-csrf` what every request carries. Sigil answers with where to go next. Without this
// script (or without WebAuthn in the browser) the box stays hidden and the forms work as
// before.
(function () {
  "use strict";
  var box = document.getElementById("passkey");
  var button = document.getElementById("passkey-button");
  var message = document.getElementById("passkey-error");
  if (!box || !button || !window.PublicKeyCredential || !navigator.credentials) {
    return;
  }
  box.hidden = false;
  var mode = box.dataset.mode || "get";
  var optionsPath = box.dataset.options || "/login/passkey/options";
  var finishPath = box.dataset.finish || "/login/passkey";

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
          var e = new Error(json.error || "refused");
          e.answer = json;
          throw e;
        }
        return json;
      });
    });
  }

  function show(text) {
    message.textContent = text;
    message.hidden = false;
  }

  function ids() {
    var body = { csrf_token: box.dataset.csrf };
    if (box.dataset.request) {
      body.request = box.dataset.request;
    }
    if (mode === "create") {
      var name = document.getElementById("passkey-name");
      body.name = name ? name.value : "";
    }
    return body;
  }

  function descriptors(list) {
    (list || []).forEach(function (c) {
      c.id = toBuffer(c.id);
    });
  }

  function ask(options) {
    options.challenge = toBuffer(options.challenge);
    if (mode === "create") {
      options.user.id = toBuffer(options.user.id);
      descriptors(options.excludeCredentials);
      return navigator.credentials.create({ publicKey: options });
    }
    descriptors(options.allowCredentials);
    return navigator.credentials.get({ publicKey: options });
  }

  function encode(credential) {
    var r = credential.response;
    var response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (mode === "create") {
      response.attestationObject = toB64url(r.attestationObject);
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      response.userHandle = toB64url(r.userHandle);
    }
    return {
      id: credential.id,
      rawId: toB64url(credential.rawId),
      type: credential.type,
      response: response,
      extensions: credential.getClientExtensionResults()
    };
  }

  button.addEventListener("click", function () {
    var body = ids();
    button.disabled = true;
    message.hidden = true;
    post(optionsPath, body)
      .then(function (answer) {
        body.ceremony = answer.ceremony;
        return ask(answer.options.publicKey);
      })
      .then(function (credential) {
        body.credential = encode(credential);
        return post(finishPath, body);
      })
      .then(function (done) {
        window.location.assign(done.location);
      })
      .catch(function (e) {
        if (e && e.answer && e.answer.location) {
          window.location.assign(e.answer.location);
          return;
        }
        show(
          mode === "create"
            ? "The passkey was not added. Check its name and try again."
            : "The passkey did not sign you in. Try again" +
                (finishPath === "/login/passkey" ? ", or use your password." : ".")
        );
        button.disabled = false;
      });
  });
})();
