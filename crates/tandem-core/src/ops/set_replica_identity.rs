//! `set_replica_identity`: not planned yet.

use crate::migration::SetReplicaIdentity;
use crate::ops::Op;
use crate::planner::PlanCx;
use crate::problem::Problem;
use crate::schema::Schema;

impl Op for SetReplicaIdentity {
    fn check(&self, _schema: &Schema) -> Vec<Problem> {
        super::unsupported::not_yet()
    }
    fn plan(&self, _schema: &mut Schema, _cx: &mut PlanCx) {}
}
