//! The HTTP API against a real `sluicegate serve`: every route and status
//! ([`http`]), hostile requests ([`bad_input`]), and the OpenAPI document checked
//! against the routes it describes ([`openapi`]).

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod http;
mod openapi;
