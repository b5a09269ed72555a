//! Printing: JSON documents and padded text tables.

use std::io::Write;

use anyhow::bail;
use serde::Serialize;

use crate::admin::AdminError;

/// Prints `value` as pretty JSON on stdout.
pub(crate) fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    Ok(())
}

/// A table with a header row; every column but the last is padded to its
/// widest cell and separated by two spaces, trailing blanks trimmed.
pub(crate) fn table<const N: usize>(header: [&str; N], rows: &[[&str; N]]) -> String {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == N {
                line.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                line.push_str(cell);
                line.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Turns an admin API failure into the one-line error the operator sees.
pub(crate) fn call<T>(result: Result<T, AdminError>) -> anyhow::Result<T> {
    match result {
        Ok(value) => Ok(value),
        Err(AdminError::Unreachable { addr, cause }) => {
            bail!("server not reachable at {addr}: {cause}")
        }
        Err(AdminError::Refused {
            body: Some(body), ..
        }) => bail!("{}", body.message),
        Err(other) => Err(other.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_padded_to_the_widest_cell_and_the_last_is_not() {
        let out = table(["A", "LONGER", "Z"], &[["xyz", "1", "end"], ["q", "", ""]]);
        assert_eq!(out, "A    LONGER  Z\nxyz  1       end\nq\n");
    }
}
