//! TEMPORARY (helper A): replaced by the lead's cluster module at merge.
pub mod tool;
