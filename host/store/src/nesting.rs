//! A bound on how deeply a decoder descends into the recursive types of
//! the model (batches of commands, transactions inside transactions and
//! their results).
//!
//! bincode has no depth limit of its own: a few bytes per level describe an
//! ever deeper batch, and decoding them would overflow the stack. Each
//! recursive field decodes through [`nested`], which counts the levels open
//! on the decoding thread and refuses one past [`DECODE_NESTING_MAX`].
//! Decoding is synchronous, so the levels of one value are all counted on
//! one thread.

use std::cell::Cell;

use serde::de::{Deserialize, Deserializer, Error};

use crate::TXN_NESTING_MAX;

/// Deepest nesting a decoded value may have: one batch around a
/// transaction nested as deeply as validation allows.
pub const DECODE_NESTING_MAX: usize = TXN_NESTING_MAX + 1;

thread_local! {
    /// Recursive fields being decoded on this thread.
    static OPEN_LEVELS: Cell<usize> = const { Cell::new(0) };
}

/// One open level; closes when dropped, whether decoding succeeded or not.
struct Level;

impl Level {
    fn open<E: Error>() -> Result<Self, E> {
        OPEN_LEVELS.with(|open| {
            let levels = open.get() + 1;
            if levels > DECODE_NESTING_MAX {
                return Err(E::custom(format!("nested more than {DECODE_NESTING_MAX} levels deep")));
            }
            open.set(levels);
            Ok(Self)
        })
    }
}

impl Drop for Level {
    fn drop(&mut self) {
        OPEN_LEVELS.with(|open| open.set(open.get().saturating_sub(1)));
    }
}

/// Decodes a recursive field one level deeper, refusing one level too many.
pub(crate) fn nested<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<T, D::Error> {
    let _level = Level::open::<D::Error>()?;
    T::deserialize(deserializer)
}
