//! The end-to-end tests, in one binary (one link step) with a module per
//! area. Helpers live in `tests/support`.

mod injection;
mod mysql;
mod postgres;
mod sandbox;
