// The tables of migrations/{sqlite,postgres}; both trees create the same columns.

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        email -> Nullable<Text>,
        email_verified -> Bool,
        name -> Nullable<Text>,
        claims -> Text,
        password_hash -> Text,
        is_admin -> Bool,
        disabled -> Bool,
        tokens_valid_after -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}

diesel::table! {
    clients (client_id) {
        client_id -> Text,
        secret_sealed -> Nullable<Binary>,
        metadata -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    signing_keys (kid) {
        kid -> Text,
        alg -> Text,
        state -> Text,
        public_jwk -> Text,
        private_sealed -> Binary,
        created_at -> BigInt,
        activated_at -> Nullable<BigInt>,
        retiring_at -> Nullable<BigInt>,
        retire_after -> Nullable<BigInt>,
        retired_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    locks (name) {
        name -> Text,
        touched_at -> BigInt,
    }
}

diesel::table! {
    sessions (id_hash) {
        id_hash -> Text,
        sid -> Text,
        user_id -> Text,
        auth_time -> BigInt,
        amr -> Text,
        acr -> Text,
        created_at -> BigInt,
        last_seen_at -> BigInt,
        expires_at -> BigInt,
        ended_at -> Nullable<BigInt>,
        user_agent -> Text,
        client_address -> Text,
    }
}

diesel::table! {
    auth_requests (id_hash) {
        id_hash -> Text,
        client_id -> Text,
        request -> Text,
        csrf_hash -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        client_address -> Text,
        signed_in_sid -> Nullable<Text>,
        pending_user_id -> Nullable<Text>,
        pending_amr -> Nullable<Text>,
        pending_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    pushed_requests (id_hash) {
        id_hash -> Text,
        client_id -> Text,
        params -> Text,
        client_address -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    consents (user_id, client_id) {
        user_id -> Text,
        client_id -> Text,
        scope -> Text,
        granted_at -> BigInt,
    }
}

diesel::table! {
    grants (id) {
        id -> Text,
        user_id -> Text,
        client_id -> Text,
        scope -> Text,
        sid -> Text,
        nonce -> Nullable<Text>,
        auth_time -> BigInt,
        amr -> Text,
        acr -> Text,
        created_at -> BigInt,
        revoked_at -> Nullable<BigInt>,
        resource -> Nullable<Text>,
        expires_at -> BigInt,
    }
}

diesel::table! {
    authorization_codes (code_hash) {
        code_hash -> Text,
        grant_id -> Text,
        client_id -> Text,
        redirect_uri -> Text,
        code_challenge -> Nullable<Text>,
        created_at -> BigInt,
        expires_at -> BigInt,
        consumed_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    refresh_tokens (token_hash) {
        token_hash -> Text,
        grant_id -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
        used_at -> Nullable<BigInt>,
        successor_sealed -> Nullable<Binary>,
        dpop_jkt -> Nullable<Text>,
    }
}

diesel::table! {
    login_failures (key) {
        key -> Text,
        failures -> Integer,
        pending -> Integer,
        window_start -> BigInt,
        locked_until -> BigInt,
        lockouts -> Integer,
        expires_at -> BigInt,
    }
}

diesel::table! {
    trusted_devices (device_hash, user_id) {
        device_hash -> Text,
        user_id -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    resources (resource) {
        resource -> Text,
        metadata -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    revoked_tokens (jti) {
        jti -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    client_assertions (client_id, jti_hash) {
        client_id -> Text,
        jti_hash -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    revisions (name) {
        name -> Text,
        value -> BigInt,
    }
}

diesel::table! {
    totp_factors (user_id) {
        user_id -> Text,
        secret_sealed -> Binary,
        confirmed_at -> Nullable<BigInt>,
        last_step -> BigInt,
        created_at -> BigInt,
    }
}

diesel::table! {
    recovery_codes (user_id, code_hash) {
        user_id -> Text,
        code_hash -> Text,
        created_at -> BigInt,
        used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    passkeys (credential_id) {
        credential_id -> Text,
        user_id -> Text,
        name -> Text,
        credential -> Text,
        backup_eligible -> Bool,
        sign_count -> BigInt,
        created_at -> BigInt,
        last_used_at -> Nullable<BigInt>,
    }
}

diesel::table! {
    webauthn_ceremonies (id_hash) {
        id_hash -> Text,
        kind -> Text,
        user_id -> Nullable<Text>,
        state -> Text,
        client_address -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    groups (id) {
        id -> Text,
        name -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    group_members (group_id, user_id) {
        group_id -> Text,
        user_id -> Text,
        added_at -> BigInt,
    }
}

diesel::joinable!(group_members -> groups (group_id));
diesel::joinable!(group_members -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(groups, group_members, users);

diesel::table! {
    audit_events (id) {
        id -> BigInt,
        time -> BigInt,
        actor_kind -> Text,
        actor -> Text,
        actor_name -> Nullable<Text>,
        client_address -> Nullable<Text>,
        event_type -> Text,
        target -> Nullable<Text>,
        outcome -> Text,
        details -> Text,
    }
}

diesel::table! {
    password_links (user_id) {
        user_id -> Text,
        token_hash -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    initial_access_tokens (token_hash) {
        token_hash -> Text,
        created_at -> BigInt,
        expires_at -> BigInt,
    }
}

diesel::table! {
    registered_clients (client_id) {
        client_id -> Text,
        access_token_hash -> Text,
        client_address -> Text,
        created_at -> BigInt,
    }
}

diesel::table! {
    dpop_jtis (jti_hash) {
        jti_hash -> Text,
        expires_at -> BigInt,
    }
}

diesel::table! {
    device_codes (device_code_hash) {
        device_code_hash -> Text,
        user_code_hash -> Text,
        client_id -> Text,
        scope -> Text,
        client_address -> Text,
        status -> Text,
        grant_id -> Nullable<Text>,
        poll_interval -> BigInt,
        last_polled_at -> Nullable<BigInt>,
        created_at -> BigInt,
        expires_at -> BigInt,
        consumed_at -> Nullable<BigInt>,
    }
}
