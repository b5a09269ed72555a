//! vigo-config (being written).
