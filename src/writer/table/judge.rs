//! The pipeline's view of the table ([`pipeline::Judge`]): a member's health, drain and weight,
//! as the writer knows them now.

use super::Table;
use crate::health::Status;
use crate::health::load::slow_start_factor;
use crate::health::overrides::OverrideKind;
use crate::model;
use crate::plan::PoolId;
use crate::probe::load::AgentState;
use crate::select::{self, pipeline};

impl Table {
    /// The pipeline's view of this table for pool `id` (and the pools of its zone it may fall
    /// back to).
    pub(crate) fn judge(&self, id: PoolId) -> Judge<'_> {
        let (zone, pool) = self.zone_and_pool(id);
        Judge {
            table: self,
            zone,
            zone_index: self.plan.pools[id as usize].zone,
            id,
            pool,
        }
    }
}

/// What the pipeline asks the writer: health, overrides and load of the members of one pool
/// (and of the pool it falls back to).
pub(crate) struct Judge<'a> {
    table: &'a Table,
    zone: &'a model::Zone,
    zone_index: usize,
    id: PoolId,
    pool: &'a model::Pool,
}

impl Judge<'_> {
    /// The id of a pool the pipeline hands back: this one, or one of the zone by name.
    fn id_of(&self, pool: &model::Pool) -> Option<PoolId> {
        if std::ptr::eq(pool, self.pool) {
            Some(self.id)
        } else {
            self.table
                .plan
                .pool_named(self.zone_index, self.zone, &pool.name)
        }
    }
}

impl pipeline::Judge for Judge<'_> {
    fn status(&self, pool: &model::Pool, member: usize) -> Status {
        self.id_of(pool)
            .map_or(Status::Unknown, |id| self.table.member_status(id, member))
    }

    fn drained(&self, c: &select::Candidate) -> bool {
        self.table
            .override_for(self.zone, c.address, c.site)
            .is_some_and(|o| o.kind == OverrideKind::Drain)
    }

    fn weight(&self, pool: &model::Pool, c: &select::Candidate) -> u32 {
        match self.id_of(pool) {
            Some(id) => self.table.effective_weight(id, c),
            None => c.weight,
        }
    }

    fn pool(&self, name: &str) -> Option<&model::Pool> {
        self.zone.pools.iter().find(|p| p.name == name)
    }
}

impl Table {
    /// Weight × spare capacity (fresh load reports, smoothed) × slow-start ramp. A drained
    /// member gets 0: weighted sampling then never picks it while another member has weight.
    /// Scaled by 100 so that small capacities keep their proportion.
    pub(crate) fn effective_weight(&self, id: PoolId, c: &select::Candidate) -> u32 {
        let pool = self.pool(id);
        let Some(mi) = pool.members.iter().position(|m| m.address == c.address) else {
            return c.weight;
        };
        let mut w = f64::from(c.weight) * 100.0;
        if let (Some(l), Some(spec)) = (self.load_state(id, mi), &pool.load)
            && l.fresh(spec, self.now)
        {
            if l.state == Some(AgentState::Drain) {
                return 0;
            }
            w *= l.capacity.unwrap_or(1.0);
        }
        if let (Some(window), Some(t)) = (pool.slow_start, self.health.came_up(c.address)) {
            w *= slow_start_factor(window, self.now.saturating_duration_since(t));
        }
        // A member with some capacity never drops to 0: it keeps a small share.
        if w > 0.0 {
            (w.round() as u32).max(1)
        } else {
            0
        }
    }
}
