//! The engines: they never print and never see the terminal, they emit counters, events and
//! samples. [`publisher`] publishes (one `Publisher` per partition behind a router),
//! [`reader`] reads (one reader per partition and consumer), [`feed`] samples both each interval
//! for whatever view reads the feed; [`group`] runs one benchmark over several processes,
//! coordinated through a stream of the broker's.

pub mod feed;
pub mod group;
pub mod publisher;
pub mod reader;
