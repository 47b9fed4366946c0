//! The NOC screen at `/` and GraphiQL at `GET /graphql`: static assets built from `services/web`
//! and embedded in the binary, served with ETags and a policy that lets them load nothing from
//! outside this server.

use poem::endpoint::{EmbeddedFileEndpoint, EmbeddedFilesEndpoint};
use poem::http::header;
use poem::middleware::SetHeader;
use poem::{Endpoint, EndpointExt};

/// The built page (`make web`, part of `make tools`, writes `services/web/dist`).
#[derive(rust_embed::RustEmbed, Debug)]
#[folder = "../web/dist/"]
pub struct PageAssets;

/// Same-origin only: the screen and GraphiQL work on an air-gapped network, and an injected
/// script could not send a token elsewhere. GraphiQL's editor sets inline styles.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; connect-src 'self'; img-src 'self' data:; \
     font-src 'self' data:; style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; \
     frame-ancestors 'none'; form-action 'none'";

/// Every response of the page: revalidated on each load (the ETag makes that a 304), so a new
/// binary's page is never mixed with an old one's cached script.
fn page_headers() -> SetHeader {
    SetHeader::new()
        .overriding(header::CACHE_CONTROL, "no-cache")
        .overriding(header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY)
        .overriding(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .overriding(header::REFERRER_POLICY, "no-referrer")
}

/// The screen and its assets, for the catch-all of the API's routes.
pub fn screen() -> impl Endpoint {
    EmbeddedFilesEndpoint::<PageAssets>::new().with(page_headers())
}

/// GraphiQL, with its React and editor from the binary rather than a CDN.
pub fn graphiql() -> impl Endpoint {
    EmbeddedFileEndpoint::<PageAssets>::new("graphiql.html").with(page_headers())
}

#[cfg(test)]
mod tests {
    use super::PageAssets;

    #[test]
    fn the_screen_and_graphiql_are_embedded() {
        for page in ["index.html", "graphiql.html"] {
            assert!(PageAssets::get(page).is_some(), "{page} is embedded");
        }
    }
}
