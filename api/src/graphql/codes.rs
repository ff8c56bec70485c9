//! Gives every error a code, on every transport (HTTP and websockets).
//!
//! Resolver errors already carry one (`ApiError`). What is left are the
//! errors async-graphql raises itself before execution: the depth and
//! complexity limits (`QUERY_TOO_COMPLEX`) and parse/validation errors of the
//! document or its variables (`VALIDATION`).

use std::sync::Arc;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextRequest, NextSubscribe,
};
use async_graphql::futures_util::stream::{BoxStream, StreamExt};
use async_graphql::{Response, ServerError};
use backchannel_domain::ErrorCode;

pub(crate) struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(ErrorCodes)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn request(&self, ctx: &ExtensionContext<'_>, next: NextRequest<'_>) -> Response {
        let mut response = next.run(ctx).await;
        response.errors.iter_mut().for_each(add_code);
        response
    }

    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        next.run(ctx, stream)
            .map(|mut response| {
                response.errors.iter_mut().for_each(add_code);
                response
            })
            .boxed()
    }
}

/// The code of a persisted-query hash the server does not hold (Apollo's).
pub(crate) const PERSISTED_QUERY_NOT_FOUND: &str = "PERSISTED_QUERY_NOT_FOUND";

/// Adds `extensions.code` to an error that has none.
pub(crate) fn add_code(error: &mut ServerError) {
    let has_code = error
        .extensions
        .as_ref()
        .is_some_and(|e| e.get("code").is_some());
    if has_code {
        return;
    }
    if error.message == "PersistedQueryNotFound" {
        // Apollo's code for it: clients resend the query text when they see it.
        error
            .extensions
            .get_or_insert_with(Default::default)
            .set("code", PERSISTED_QUERY_NOT_FOUND);
        return;
    }
    let code = if error.message.starts_with("Query is too complex")
        || error.message.starts_with("Query is nested too deep")
    {
        ErrorCode::QueryTooComplex
    } else {
        ErrorCode::Validation
    };
    error
        .extensions
        .get_or_insert_with(Default::default)
        .set("code", code.as_str());
}
