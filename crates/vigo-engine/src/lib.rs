//! vigo-engine (being written).
