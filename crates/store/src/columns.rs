//! Reading a result row by column name, the same way on both backends, so that a record's
//! row decoder (`petition_from_row`, `task_from_row`, …) is written once for SQLite and
//! PostgreSQL.
//!
//! rusqlite's `query_map` and `query_row` want a closure that fails with the driver's own
//! error; a shared decoder fails with [`StoreError`], so SQLite call sites return its result
//! inside `Ok` (`|r| Ok(task_from_row(r))`) and unwrap it after (`rows.map(|r| r?)`).

use crate::{Result, StoreError};

/// A value both drivers convert from a column.
pub(crate) trait Column:
    Sized + rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a>
{
}

impl<T> Column for T where T: rusqlite::types::FromSql + for<'a> postgres::types::FromSql<'a> {}

/// A result row, read by column name.
pub(crate) trait Columns {
    fn col<T: Column>(&self, name: &str) -> Result<T>;

    /// A version number, stored as a BIGINT (PostgreSQL has no unsigned column).
    fn version(&self, name: &str) -> Result<u32> {
        let v: i64 = self.col(name)?;
        u32::try_from(v).map_err(|_| StoreError::Corrupt(format!("{name} = {v}")))
    }
}

impl Columns for rusqlite::Row<'_> {
    fn col<T: Column>(&self, name: &str) -> Result<T> {
        Ok(self.get(name)?)
    }
}

impl Columns for postgres::Row {
    fn col<T: Column>(&self, name: &str) -> Result<T> {
        Ok(self.try_get(name)?)
    }
}
