//! vigo-log (being written).
