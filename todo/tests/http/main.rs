//! The HTTP API against a real `sluicegate serve`: every route and status
//! ([`http`]), hostile requests ([`bad_input`]), and the OpenAPI document checked
//! against the routes it describes ([`openapi`]), and writes that can be repeated
//! safely ([`idempotency`]).

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod http;
mod idempotency;
mod openapi;
