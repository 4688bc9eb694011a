//! The answer of an operation whose planning has not landed yet.

use crate::problem::Problem;

pub(crate) fn not_yet() -> Vec<Problem> {
    vec![Problem::new(
        "",
        "this operation is not supported by this version of tandem yet",
    )
    .with_hint("split it into a later migration, or use a `sql` operation meanwhile")]
}
