//! The mailbox: a multi-producer, single-consumer async queue whose behaviour
//! when full is a [`Policy`] value.

mod policy;

pub use policy::{InvalidPolicy, Policy};
