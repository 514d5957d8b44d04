"""Authlib (Debian's python3-authlib) exchanges a user's access token at Sigil (RFC 8693), with
and without an actor token, introspects the result, and is refused a refresh token as subject.

The same conversation as the Node scripts (tests/node/lib.mjs): one JSON object per line on
stdout, named by `step`; the test answers on stdin."""

import json
import os
import sys
import traceback

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.integrations.base_client.errors import OAuthError

GRANT = "urn:ietf:params:oauth:grant-type:token-exchange"
ACCESS_TOKEN = "urn:ietf:params:oauth:token-type:access_token"
REFRESH_TOKEN = "urn:ietf:params:oauth:token-type:refresh_token"


def say(step, **data):
    print(json.dumps({"step": step, **data}), flush=True)


def ask(step, **data):
    say(step, **data)
    line = sys.stdin.readline()
    if not line:
        raise RuntimeError(f"the test closed stdin instead of answering {step}")
    return json.loads(line)


def refused(session, url, **params):
    """The OAuth error of an exchange that must fail."""
    try:
        session.fetch_token(url, grant_type=GRANT, **params)
    except OAuthError as e:
        return e.error
    raise AssertionError(f"exchange of {params} was accepted")


def run():
    issuer = os.environ["SIGIL_ISSUER"]
    meta = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=30).json()
    assert GRANT in meta["grant_types_supported"], meta["grant_types_supported"]
    given = ask("tokens")
    session = OAuth2Session(
        given["client_id"],
        given["client_secret"],
        token_endpoint_auth_method="client_secret_basic",
    )
    token_url = meta["token_endpoint"]

    plain = session.fetch_token(
        token_url,
        grant_type=GRANT,
        subject_token=given["subject_token"],
        subject_token_type=ACCESS_TOKEN,
        audience=given["audience"],
    )
    delegated = session.fetch_token(
        token_url,
        grant_type=GRANT,
        subject_token=given["subject_token"],
        subject_token_type=ACCESS_TOKEN,
        actor_token=given["actor_token"],
        actor_token_type=ACCESS_TOKEN,
    )
    introspected = session.introspect_token(
        meta["introspection_endpoint"], token=delegated["access_token"]
    ).json()
    refresh_as_subject = refused(
        session,
        token_url,
        subject_token=given["refresh_token"],
        subject_token_type=REFRESH_TOKEN,
    )
    return {
        "plain": dict(plain),
        "delegated": dict(delegated),
        "introspected": introspected,
        "refresh_as_subject": refresh_as_subject,
    }


try:
    say("done", **run())
except Exception as e:  # the test prints it
    say("error", message="".join(traceback.format_exception(e)), error=getattr(e, "error", None))
    sys.exit(1)
