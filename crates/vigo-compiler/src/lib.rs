//! vigo-compiler (being written).
