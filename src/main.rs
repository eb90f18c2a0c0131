//! The `hookline` command.

fn main() {}
