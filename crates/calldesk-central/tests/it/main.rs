//! Against a real PostgreSQL: `DATABASE_URL` must point at a server where we may create
//! databases (`cargo xtask test` provides one). Each `#[sqlx::test]` gets a fresh database
//! with the central migrations applied.

// Test helpers may panic on bad fixtures: that is a failed test, not a crash.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod calls;
mod common;
mod directory;
mod inbox;
mod migration;
mod notes;
mod recordings;
mod replicas;
mod sync;
mod tenants;
mod worklist;
