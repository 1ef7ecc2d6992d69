//! The commands, one module each and each once for a stream and a super stream: parse nothing
//! (settings come checked), drive an engine, return a `RunSummary` for `report` to render. A new
//! command is a module here, its settings in `settings`, and one arm in `lib::run`. `streams`
//! (list, info, delete) is administration: it returns a `catalog` model instead. `docs`
//! (completions, man pages) connects to nothing: it writes documents made from the CLI itself.

pub mod bench;
pub mod bench_group;
pub mod consume;
pub mod docs;
pub mod max_rate;
pub mod produce;
pub mod serve;
pub mod streams;
pub mod workbench;
pub mod workload;
