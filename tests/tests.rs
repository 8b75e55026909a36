//! updraft's integration tests: one binary, real processes, real files, real sockets.

// Shared fixtures: temporary homes, running the binary, waiting on conditions.
mod util;
// The command line: exit codes, config precedence, DAG folders read through the CLI.
mod cli;
