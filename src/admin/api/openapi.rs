//! The admin API's OpenAPI 3.1 document, generated from the handlers' `#[utoipa::path]`
//! descriptions and their types — never written by hand, so it cannot drift from the code.
//! `GET /admin/api/openapi.json` serves it without a token: it describes the API and grants
//! nothing. Every operation but this one needs a bearer token with the scope `sigil:admin`, and
//! may answer 401, 403 or 503: those are added to each operation here, once.

use actix_web::http::header;
use actix_web::HttpResponse;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref};
use utoipa::{Modify, OpenApi};

use super::{clients, groups, keys, resources, sessions, users, ADMIN_SCOPE};

/// The path of the document itself.
pub const PATH: &str = "/admin/api/openapi.json";

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Sigil admin API",
        description = "Manage Sigil's users, groups, clients, resource servers, sessions, keys and \
            audit log. Authenticate with an access token from Sigil's token endpoint \
            (client_credentials grant, scope sigil:admin).",
    ),
    paths(
        users::list, users::add, users::show, users::update, users::remove,
        users::switch_account, users::reset_factors, users::password_link,
        clients::list, clients::add, clients::show, clients::update, clients::remove,
        clients::rotate_secret,
        resources::get, resources::add, resources::update, resources::remove,
        sessions::list, sessions::end,
        keys::list, keys::schedule, keys::rotate, keys::retire,
        groups::list, groups::add, groups::rename, groups::remove, groups::members,
        groups::add_member, groups::remove_member,
        crate::admin::audit::list,
        serve,
    ),
    components(schemas(super::ErrorBody)),
    modifiers(&Guarded),
)]
pub struct AdminApi;

/// The bearer scheme, required everywhere, and the answers every guarded operation may give.
struct Guarded;

impl Modify for Guarded {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(format!(
                        "An access token of Sigil's (client_credentials) with the scope \
                         {ADMIN_SCOPE}"
                    )))
                    .build(),
            ),
        );
        doc.security = Some(vec![SecurityRequirement::new("bearer", [ADMIN_SCOPE])]);
        let error = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build()
        };
        for item in doc.paths.paths.values_mut() {
            let operations = [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.patch,
                &mut item.delete,
            ];
            // The document itself is public (`security: [{}]`).
            let public = |o: &&mut utoipa::openapi::path::Operation| {
                o.security
                    .as_ref()
                    .is_some_and(|s| s.iter().all(|r| r == &SecurityRequirement::default()))
            };
            for operation in operations.into_iter().flatten().filter(|o| !public(o)) {
                let responses = &mut operation.responses.responses;
                for (status, description) in [
                    ("401", "no valid bearer token (invalid_token)"),
                    (
                        "403",
                        "the token lacks the scope sigil:admin (insufficient_scope)",
                    ),
                    (
                        "503",
                        "the database cannot be reached; retry after Retry-After",
                    ),
                ] {
                    responses
                        .entry(status.to_string())
                        .or_insert_with(|| error(description).into());
                }
            }
        }
    }
}

/// The document as JSON.
pub fn document() -> String {
    AdminApi::openapi()
        .to_json()
        .unwrap_or_else(|_| "{}".to_string())
}

/// This document: OpenAPI 3.1, public.
#[utoipa::path(get, path = "/admin/api/openapi.json", tag = "openapi", security(()),
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object)))]
pub async fn serve() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(document())
}
