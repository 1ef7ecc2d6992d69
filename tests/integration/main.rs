//! Integration tests: the real `invstream` binary against a real RabbitMQ broker.
//!
//! The broker must already run (`scripts/test.sh` starts it; so does `scripts/broker.sh up`),
//! and for `cluster` a 3-node cluster (`scripts/cluster.sh up`, which scripts/test.sh runs too).
//! A test that cannot reach it fails with a message saying so; none is skipped.

mod adversarial_data;
mod adversarial_hangs;
mod adversarial_inputs;
mod bench;
mod cluster;
mod configuration;
mod dashboard;
mod edge_inputs;
mod errors;
mod fan_out;
mod faults;
mod first_run;
mod flag_walk;
mod ingest;
mod install;
mod instances;
mod interrupts;
mod produce_consume;
mod readme;
mod reliability;
mod retention;
mod serve;
mod serve_access;
mod serve_broker;
mod serve_frames;
mod serve_metrics;
mod serve_util;
mod streams;
mod sub_entry;
mod super_stream;
mod super_stream_cluster;
mod super_stream_options;
mod util;
mod workbench;
mod workload;
