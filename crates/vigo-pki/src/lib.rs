//! vigo-pki (being written).
