//! Operations of the format whose planning lands with the alter-column/constraints/indexes
//! work: they load and validate as files, and `plan`/`start` refuse them with a clear message
//! instead of doing something partial.

use crate::migration::{CreateConstraint, DropConstraint, DropMulticolumnConstraint};
use crate::ops::Op;
use crate::planner::PlanCx;
use crate::problem::Problem;
use crate::schema::Schema;

pub(crate) fn not_yet() -> Vec<Problem> {
    vec![Problem::new("", "this operation is not supported by this version of tandem yet")
        .with_hint("it is planned (alter_column, indexes, constraints, replica identity); split it into a later migration or use a `sql` operation meanwhile")]
}

macro_rules! unsupported {
    ($($t:ty),*) => {$(
        impl Op for $t {
            fn check(&self, _schema: &Schema) -> Vec<Problem> {
                not_yet()
            }
            fn plan(&self, _schema: &mut Schema, _cx: &mut PlanCx) {}
        }
    )*};
}

unsupported!(
    CreateConstraint,
    DropConstraint,
    DropMulticolumnConstraint
);
