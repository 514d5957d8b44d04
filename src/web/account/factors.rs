//! Second factors on the account page (issue 11: TOTP enrolment with a first code, recovery
//! codes, passkeys). Not built yet: another part wires it in here and in the "Second factors"
//! section of `templates/account.html`, behind `super::guard` like every other change.
