//! GraphQL pieces both schemas share: scalars, enums mirrored from `domain`,
//! opaque cursors, id parsing, and the extension that gives every error a code.

pub mod codes;
pub mod cursor;
pub mod enums;
pub mod ids;
pub mod time;
