//! The REST server: thin axum handlers over the core service API. Handlers only
//! extract, call the core and map the result; roles are checked in the core.

mod error;
mod extract;
mod routes;
mod sse;

pub use error::ApiError;
pub use routes::{app, AppState};
