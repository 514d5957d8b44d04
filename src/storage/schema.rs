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
