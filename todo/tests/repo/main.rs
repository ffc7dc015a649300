//! The repository's files rather than the running service: the config format and the
//! shipped policy files ([`config`]), the library's layering ([`layers`]), and
//! `scripts/test` ([`scripts`]).

mod config;
mod layers;
mod scripts;
