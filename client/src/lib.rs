//! Filled by a later issue (see ARCHITECTURE.md); empty so the workspace layout is fixed from the start.
