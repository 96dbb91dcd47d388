//! The compiler through its library API, with the real embedded guest images.

mod targets;
