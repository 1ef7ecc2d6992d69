mod list;
mod map;
mod simple;
mod value;

pub use list::{list_decoder, List};
pub use map::Map;
pub use simple::*;
pub use value::*;
