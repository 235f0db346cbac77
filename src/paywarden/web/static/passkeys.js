// Passkeys on the trusted surface: add one on /settings, sign in with one on /signin.
// The server checks everything (origin, RP ID, challenge, signature, counter); this script
// only carries the ceremony between the page and navigator.credentials. Same origin, the
// session's CSRF token in a header, nothing external, no build step.
(function () {
  "use strict";

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer);
    var text = "";
    for (var i = 0; i < bytes.length; i++) { text += String.fromCharCode(bytes[i]); }
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function fromBase64url(value) {
    var text = value.replace(/-/g, "+").replace(/_/g, "/");
    while (text.length % 4) { text += "="; }
    var raw = atob(text);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes.buffer;
  }

  function descriptors(list) {
    return (list || []).map(function (item) {
      return { type: item.type, id: fromBase64url(item.id), transports: item.transports };
    });
  }

  // The server's options (WebAuthn JSON) as the browser API wants them (binary fields).
  function creationOptions(options) {
    var publicKey = Object.assign({}, options);
    publicKey.challenge = fromBase64url(options.challenge);
    publicKey.user = Object.assign({}, options.user, { id: fromBase64url(options.user.id) });
    publicKey.excludeCredentials = descriptors(options.excludeCredentials);
    return publicKey;
  }

  function requestOptions(options) {
    var publicKey = Object.assign({}, options);
    publicKey.challenge = fromBase64url(options.challenge);
    publicKey.allowCredentials = descriptors(options.allowCredentials);
    return publicKey;
  }

  // A credential as JSON, every binary field in base64url.
  function credentialJson(credential) {
    var response = credential.response;
    var body = { clientDataJSON: toBase64url(response.clientDataJSON) };
    if (response.attestationObject) {
      body.attestationObject = toBase64url(response.attestationObject);
      body.transports = response.getTransports ? response.getTransports() : [];
    } else {
      body.authenticatorData = toBase64url(response.authenticatorData);
      body.signature = toBase64url(response.signature);
      if (response.userHandle) { body.userHandle = toBase64url(response.userHandle); }
    }
    return {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      response: body,
      authenticatorAttachment: credential.authenticatorAttachment || undefined,
      clientExtensionResults: credential.getClientExtensionResults()
    };
  }

  function post(path, csrf, body) {
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      cache: "no-store",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var refused = new Error(data.error || "");
          refused.fromServer = true;
          throw refused;
        }
        return data;
      });
    });
  }

  // One ceremony, driven by a button in a card whose data-* attributes carry the token
  // and the words; progress and errors go to the card's aria-live status line.
  function wire(card, button, run) {
    var status = card.querySelector("#passkey-status");
    function say(text) { status.textContent = text; }
    if (!window.PublicKeyCredential || !navigator.credentials) {
      button.disabled = true;
      say(card.getAttribute("data-unsupported"));
      return;
    }
    button.addEventListener("click", function () {
      button.disabled = true;
      say(card.getAttribute("data-working"));
      run(card.getAttribute("data-csrf"))
        .then(function (result) { window.location.assign(result.location); })
        .catch(function (error) {
          button.disabled = false;
          if (error && error.name === "NotAllowedError") {
            say(card.getAttribute("data-cancelled"));
          } else if (error && error.fromServer && error.message) {
            say(error.message);
          } else {
            say(card.getAttribute("data-failed"));
          }
        });
    });
  }

  var adding = document.getElementById("passkeys");
  var add = document.getElementById("passkey-add");
  if (adding && add) {
    wire(adding, add, function (csrf) {
      var name = document.getElementById("passkey-name");
      return post("/passkeys/register/begin", csrf, {})
        .then(function (data) {
          return navigator.credentials.create({ publicKey: creationOptions(data.publicKey) });
        })
        .then(function (credential) {
          return post("/passkeys/register/finish", csrf, {
            credential: credentialJson(credential),
            name: name ? name.value : ""
          });
        });
    });
  }

  var signing = document.getElementById("passkey-signin-card");
  var signIn = document.getElementById("passkey-signin");
  if (signing && signIn) {
    wire(signing, signIn, function (csrf) {
      return post("/passkeys/signin/begin", csrf, {})
        .then(function (data) {
          return navigator.credentials.get({ publicKey: requestOptions(data.publicKey) });
        })
        .then(function (credential) {
          return post("/passkeys/signin/finish", csrf, {
            credential: credentialJson(credential),
            next: signing.getAttribute("data-next") || ""
          });
        });
    });
  }
})();
