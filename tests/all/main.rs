//! The end-to-end tests, in one binary (one link step) with a module per
//! area. Helpers live in `tests/support`.

// Test code: a panic is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod acl_matrix;
mod agent;
mod api;
mod approle;
mod audit;
mod audit_chain;
mod authoring;
mod awskms;
mod barrier_rotation;
mod cert_auth;
mod cli;
mod cluster;
mod contract;
mod crash;
mod deploy;
mod hostile_v2;
mod hsm;
mod hvac;
mod injection;
mod jwt;
mod kv;
mod lease_paths;
mod leases;
mod listener;
mod mysql;
mod openapi;
mod outage;
mod password_policies;
mod pki;
mod plugin_catalog;
mod policies;
mod postgres;
mod process;
mod rabbitmq;
mod redis;
mod rewrap;
mod sandbox;
mod scram;
mod seal;
mod seal_migration;
mod sql_hardening;
mod static_roles;
mod storage;
mod tokens;
mod upgrade;
mod username_templates;
mod vault_client;
